/** Extension URLs of the R4 Subscriptions Backport IG (STU 1.1) and the product's own. */
const BP = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
export const EXT = {
  filterCriteria: `${BP}/backport-filter-criteria`,
  payloadContent: `${BP}/backport-payload-content`,
  heartbeatPeriod: `${BP}/backport-heartbeat-period`,
  timeout: `${BP}/backport-timeout`,
  maxCount: `${BP}/backport-max-count`,
  topicProfile: `${BP}/backport-subscription`,
  statusProfile: `${BP}/backport-subscription-status-r4`,
  notificationProfile: `${BP}/backport-subscription-notification-r4`,
  /** Who the subscription acts for (set by the server; see subscription-writes.ts). */
  owner: 'http://medivoy.example/fhir/StructureDefinition/subscription-owner',
} as const;

export type PayloadContent = 'empty' | 'id-only' | 'full-resource';
export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';
