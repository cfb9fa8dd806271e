import type { BusinessOperation, OperationParameterSpec } from '../fhir/operations/registry.js';
import type { BulkData } from './service.js';

const IG = 'http://hl7.org/fhir/uv/bulkdata/OperationDefinition';
/** HL7's canonicals (Bulk Data Access IG 2.0): system `export`, `patient-export`, `group-export`. */
const exportCanonical = (type: string | undefined) => (type === undefined ? `${IG}/export` : type === 'Patient' ? `${IG}/patient-export` : `${IG}/group-export`);

const EXPORT_PARAMETERS: OperationParameterSpec[] = [
  { name: '_outputFormat', use: 'in', min: 0, max: '1', type: 'string', documentation: 'application/fhir+ndjson (default), application/ndjson or ndjson' },
  { name: '_since', use: 'in', min: 0, max: '1', type: 'instant', documentation: 'Only resources updated after this instant' },
  { name: '_type', use: 'in', min: 0, max: '*', type: 'string', documentation: 'Comma-separated resource types (default: every type the token may read)' },
  { name: '_typeFilter', use: 'in', min: 0, max: '*', type: 'string', documentation: 'Type?query searches; queries of one type are OR-ed' },
  { name: '_elements', use: 'in', min: 0, max: '*', type: 'string', documentation: 'Elements to keep (element or Type.element); resources are marked SUBSETTED' },
];
const PATIENT: OperationParameterSpec = { name: 'patient', use: 'in', min: 0, max: '*', type: 'Reference', documentation: 'POST only: the patients whose compartments are exported' };
const ASYNC = ' Asynchronous (Prefer: respond-async, Accept: application/fhir+json): 202 with Content-Location, the status URL to poll, whose answer when done is the manifest of NDJSON files.';

/**
 * The Bulk Data kick-offs. Each level is its own registration (the IG defines three operations); status
 * polling, cancellation and the files are routes of this module (bulk/routes.ts).
 */
export function bulkOperations(bulk: () => BulkData): BusinessOperation[] {
  return [
    {
      name: 'export',
      levels: ['system', 'type'],
      resourceTypes: ['Patient'],
      methods: ['GET', 'POST'],
      affectsState: false,
      description: `Bulk Data export: every resource the token may read (system level, needs system/ scopes) or the Patient compartments of all (or the posted) patients.${ASYNC}`,
      parameters: [...EXPORT_PARAMETERS, PATIENT],
      canonical: exportCanonical,
      handler: (input, ctx) => bulk().kickOffExport(input.target.type ? 'patient' : 'system', input, ctx),
    },
    {
      name: 'export',
      levels: ['instance'],
      resourceTypes: ['Group'],
      methods: ['GET', 'POST'],
      affectsState: false,
      description: `Bulk Data export of the Patient compartments of a Group's members.${ASYNC}`,
      parameters: [...EXPORT_PARAMETERS, PATIENT],
      canonical: exportCanonical,
      handler: (input, ctx) => bulk().kickOffExport('group', input, ctx),
    },
    {
      name: 'import',
      levels: ['system'],
      methods: ['POST'],
      affectsState: true,
      description: `Bulk import of NDJSON files (input parts type and url: file: URLs under the import directory, or http(s) URLs of allowed origins), each resource stored under its id on its own; failed lines are OperationOutcomes in the manifest's error files.${ASYNC}`,
      parameters: [
        { name: 'inputFormat', use: 'in', min: 0, max: '1', type: 'code', documentation: 'application/fhir+ndjson' },
        { name: 'inputSource', use: 'in', min: 0, max: '1', type: 'uri', documentation: 'Where the files come from (informational)' },
        { name: 'input', use: 'in', min: 1, max: '*', type: 'BackboneElement', documentation: 'One file: parts type (code) and url (uri)' },
      ],
      handler: (input, ctx) => bulk().kickOffImport(input, ctx),
    },
  ];
}
