import type { BusinessOperation } from './fhir/operations/registry.js';
import type { BookingService } from './scheduling/booking.js';
import type { PractitionerRatings } from './reviews/practitioner-rating.js';
import { appointmentOperations } from './scheduling/appointment-operations.js';
import { verifyPractitionerRole } from './scheduling/verify-practitioner-role.js';
import { generateSlotsOperation } from './scheduling/generate-slots-operation.js';
import { reviewOperation } from './reviews/review-appointment.js';
import type { FhirRepository } from './fhir/storage/repository.js';
import type { PayerAdapters } from './insurance/payer-adapter.js';
import { eligibilityOperation } from './insurance/eligibility.js';
import { onboardingStatusOperation } from './onboarding/onboarding-operation.js';
// --- billing: begin ---
import type { Billing } from './billing/billing.js';
import { billingOperations } from './billing/billing-operations.js';
// --- billing: end ---
import { subscriptionOperations, type SubscriptionOperationPorts } from './subscriptions/operations.js';
// --- bulk: begin ---
import { bulkOperations } from './bulk/operations.js';
import type { BulkData } from './bulk/service.js';
// --- bulk: end ---
// --- analytics: begin ---
import type { AnalyticsService } from './analytics/analytics-service.js';
import { analyticsOperations } from './analytics/operations.js';
import type { AnalyticsReports } from './analytics/reports/report-jobs.js';
import { reportOperations } from './analytics/reports/report-operations.js';
// --- analytics: end ---
// --- audit: begin ---
import { accessLogOperation } from './audit/access-log.js';
// --- audit: end ---

/** The services the business operations act through (built in server.ts). */
export interface BusinessServices {
  booking: BookingService;
  ratings: PractitionerRatings;
  /** Eligibility adapters by kind (insurance/payer-adapter.ts). */
  payers: PayerAdapters;
  /** The server's own repository, for what operations read on the organization's behalf. */
  system: FhirRepository;
  /** Subscription events and status ($status, $events). */
  subscriptions: SubscriptionOperationPorts;
  // --- bulk: begin ---
  /** Bulk Data $export/$import kick-offs. */
  bulk: BulkData;
  // --- bulk: end ---
  // --- billing: begin ---
  /** Invoices, payments and refunds (src/billing/). */
  billing: Billing;
  // --- billing: end ---
  // --- analytics: begin ---
  /** Figures and reports ($analytics, $analytics-report). */
  analytics: AnalyticsService;
  analyticsReports: AnalyticsReports;
  // --- analytics: end ---
}

/** Every business operation of the product, each from its own module; server.ts registers them. */
export function businessOperations(services: BusinessServices): BusinessOperation[] {
  return [
    ...appointmentOperations(services),
    verifyPractitionerRole,
    generateSlotsOperation,
    reviewOperation(services),
    eligibilityOperation(services),
    onboardingStatusOperation(services),
    ...subscriptionOperations(() => services.subscriptions),
    ...bulkOperations(() => services.bulk), // --- bulk ---
    // --- billing: begin ---
    ...billingOperations({ billing: () => services.billing }),
    // --- billing: end ---
    // --- analytics: begin ---
    ...analyticsOperations(() => services.analytics),
    ...reportOperations(() => ({ analytics: services.analytics, reports: services.analyticsReports })),
    // --- analytics: end ---
    // --- audit: begin ---
    accessLogOperation(() => services.system),
    // --- audit: end ---
  ];
}

/**
 * The same operations without a running server, for what only needs their declarations (the
 * CapabilityStatement, OpenAPI): their handlers would fail if called, and their factories must not touch
 * the services until a handler runs.
 */
export function declaredOperations(): BusinessOperation[] {
  const unbound = new Proxy({} as BusinessServices, {
    get: (_t, name) => {
      throw new Error(`${String(name)} is not available: these operations are declarations only`);
    },
  });
  return businessOperations(unbound);
}
