/**
 * Regenerates capability-statement.json from the route table, the registered business operations and the R4 resource types.
 * Run after adding an interaction: `npm run capability`. A test fails while the file is stale.
 */
import { writeFileSync } from 'node:fs';
import { deriveCapabilityStatement } from '../src/fhir/capability.js';
import { getResourceTypes, loadDefinitions } from '../src/fhir/definitions.js';
import { declaredOperations } from '../src/business-operations.js';

loadDefinitions();
const statement = deriveCapabilityStatement(getResourceTypes(), declaredOperations());
writeFileSync(new URL('../capability-statement.json', import.meta.url), JSON.stringify(statement, null, 2) + '\n');
console.log(`capability-statement.json: ${statement.rest?.[0]?.resource?.length} resource types`);
