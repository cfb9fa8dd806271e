/**
 * The subscription topics of the R4 Backport form: one canonical per resource type, triggered by every
 * create, update and delete of that type, narrowed by filter criteria (any search parameter of the type).
 * They are identified by canonical URL only (README "Subscriptions" lists them); R4 has no SubscriptionTopic.
 */
export const TOPIC_BASE = 'http://medivoy.example/fhir/SubscriptionTopic';

export interface Topic {
  url: string;
  resourceType: string;
  description: string;
}

const TYPES: [string, string][] = [
  ['appointment', 'Appointment'],
  ['encounter', 'Encounter'],
  ['observation', 'Observation'],
  ['diagnostic-report', 'DiagnosticReport'],
  ['medication-request', 'MedicationRequest'],
  ['invoice', 'Invoice'],
];

export const TOPICS: Topic[] = TYPES.map(([slug, type]) => ({
  url: `${TOPIC_BASE}/${slug}`,
  resourceType: type,
  description: `Every create, update and delete of a ${type}; filter with ${type} search parameters.`,
}));

export function topicByUrl(url: string): Topic | undefined {
  return TOPICS.find((t) => t.url === url.replace(/\|[^|]*$/, ''));
}
