/**
 * Billing calculations: amounts in minor units, tax per Organization, the patient's share after insurance as
 * separate lines, the cancellation policy; over HTTP: a booked appointment with a fee (the role's, or a
 * ChargeItemDefinition of the Organization) produces a ChargeItem and an Invoice as CONTRACT.md shapes them, its
 * PDF (Binary + DocumentReference, e-mailed, downloadable by its patient only), and invoice numbers from two
 * server processes that are unique and without gaps.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { http, startInstancePair, startTestServer, type TestServer } from './support/server.js';
import { startSmtp } from './support/smtp.js';
import { userToken } from './support/browser.js';
import { clinic, ext, invoiceOf, minor, params, PASSWORD, registerPatient, SD } from './support/billing.js';
import { price, refundPercent, termsOf } from '../src/billing/charges.js';
import { DEFAULT_CANCELLATION, billingProblems, settingsOf } from '../src/billing/billing-config.js';
import { money, percentOf, toMinor } from '../src/billing/money.js';

describe('pricing (minor units)', () => {
  it('keeps amounts exact in minor units and refuses more decimals than the currency has', () => {
    expect(toMinor({ value: 80.1, currency: 'EUR' }, 'fee')).toEqual({ minor: 8010, currency: 'EUR' });
    expect(toMinor({ value: 0.29, currency: 'EUR' }, 'fee').minor).toBe(29); // 0.29 * 100 is 28.999… as a float
    expect(toMinor({ value: 5000, currency: 'JPY' }, 'fee').minor).toBe(5000);
    expect(() => toMinor({ value: 80.005, currency: 'EUR' }, 'fee')).toThrow(/more decimals/);
    expect(() => toMinor({ value: 1.5, currency: 'JPY' }, 'fee')).toThrow(/more decimals/);
    expect(money({ minor: 1999, currency: 'EUR' })).toEqual({ value: 19.99, currency: 'EUR', extension: [{ url: `${SD}/amount-minor-units`, valueInteger: 1999 }] });
    expect(percentOf(1999, 19)).toBe(380); // 379.81 → 380
    expect(percentOf(250, 50)).toBe(125);
  });

  it('is tax-exempt by default; a tax rule adds its share, rounded to a minor unit', () => {
    const exempt = price({ minor: 8000, currency: 'EUR' }, settingsOf(undefined).tax);
    expect(exempt).toMatchObject({ net: 8000, tax: 0, gross: 8000, patient: 8000, insurer: 0, shareLines: [] });
    const taxed = price({ minor: 1999, currency: 'EUR' }, { rate: 19, label: 'VAT 19%' });
    expect(taxed).toMatchObject({ net: 1999, tax: 380, gross: 2379, patient: 2379 });
  });

  it('the patient pays the deductible, then copay and coinsurance; never more than the total', () => {
    const p = price({ minor: 10000, currency: 'EUR' }, { rate: 0, label: 'x' }, { coverage: 'Coverage/c', eligibility: 'CoverageEligibilityResponse/r', deductible: 3000, copay: 1500, coinsurance: 10 });
    // 30.00 deductible, 15.00 copay, 10% of the 70.00 left = 7.00; the insurer pays 48.00.
    expect(p.shareLines).toEqual([{ code: 'deductible', display: 'Deductible', minor: 3000 }, { code: 'copay', display: 'Copayment', minor: 1500 }, { code: 'coinsurance', display: 'Coinsurance 10%', minor: 700 }]);
    expect(p).toMatchObject({ gross: 10000, patient: 5200, insurer: 4800 });
    const small = price({ minor: 2000, currency: 'EUR' }, { rate: 0, label: 'x' }, { coverage: 'c', eligibility: 'e', deductible: 5000, copay: 1500, coinsurance: 0 });
    expect(small).toMatchObject({ patient: 2000, insurer: 0, shareLines: [{ code: 'deductible', minor: 2000 }] });
  });

  it('reads insurance terms only from a complete, in-force response, in the invoice currency', () => {
    const r: any = {
      resourceType: 'CoverageEligibilityResponse', id: 'r1', outcome: 'complete', created: '2026-01-01',
      insurance: [{ coverage: { reference: 'Coverage/c1' }, inforce: true, item: [{ benefit: [
        { type: { coding: [{ code: 'deductible' }] }, allowedMoney: { value: 100, currency: 'EUR' } },
        { type: { coding: [{ code: 'copay' }] }, allowedMoney: { value: 20, currency: 'USD' } },
        { type: { coding: [{ code: 'coinsurance' }] }, allowedUnsignedInt: 10 },
      ] }] }],
    };
    expect(termsOf(r, 'EUR')).toEqual({ terms: { coverage: 'Coverage/c1', eligibility: 'CoverageEligibilityResponse/r1', deductible: 10000, copay: 0, coinsurance: 10 }, skipped: ['copay in USD'] });
    expect(termsOf({ ...r, insurance: [{ ...r.insurance[0], inforce: false }] }, 'EUR').terms).toBeUndefined();
    expect(termsOf({ ...r, outcome: 'error' }, 'EUR').terms).toBeUndefined();
  });

  it('refunds by notice: the default policy (24 h full, 2 h half, then nothing), an Organization\'s own, the practice always in full', () => {
    const h = 3_600_000;
    expect(refundPercent(DEFAULT_CANCELLATION, 48 * h, true)).toBe(100);
    expect(refundPercent(DEFAULT_CANCELLATION, 5 * h, true)).toBe(50);
    expect(refundPercent(DEFAULT_CANCELLATION, 1 * h, true)).toBe(0);
    expect(refundPercent(DEFAULT_CANCELLATION, 1 * h, false)).toBe(100);
    const own = settingsOf({ resourceType: 'Organization', extension: [
      { url: `${SD}/cancellation-refund`, extension: [{ url: 'min-notice-hours', valueDecimal: 72 }, { url: 'percent', valueUnsignedInt: 100 }] },
      { url: `${SD}/cancellation-refund`, extension: [{ url: 'min-notice-hours', valueDecimal: 0 }, { url: 'percent', valueUnsignedInt: 25 }] },
    ] });
    expect(refundPercent(own.cancellation, 48 * h, true)).toBe(25);
    expect(refundPercent(own.cancellation, 80 * h, true)).toBe(100);
    expect(billingProblems({ resourceType: 'Organization', extension: [{ url: `${SD}/billing-tax`, extension: [{ url: 'rate', valueDecimal: 150 }] }, { url: `${SD}/billing-currency`, valueCode: 'euro' }] })).toHaveLength(2);
  });
});

describe('invoices over HTTP', () => {
  let srv: TestServer;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let plain: Awaited<ReturnType<typeof clinic>>;
  let taxed: Awaited<ReturnType<typeof clinic>>;
  let viaDefinition: Awaited<ReturnType<typeof clinic>>;
  let foreign: Awaited<ReturnType<typeof clinic>>;
  let ann: string;
  let annToken: string;
  let benToken: string;
  const book = (slot: string, patient: string) => http('POST', `${srv.base}/Appointment/$book`, { body: params({ slot, patient }) });

  beforeAll(async () => {
    smtp = await startSmtp();
    srv = await startTestServer({ SMTP_URL: smtp.url });
    plain = await clinic(srv.base, { id: 'plain', fee: 80, slots: 3 });
    taxed = await clinic(srv.base, { id: 'taxed', fee: 19.99, slots: 2, startMinutes: 3 * 1440, orgExtensions: [{ url: `${SD}/billing-tax`, extension: [{ url: 'rate', valueDecimal: 19 }, { url: 'label', valueString: 'VAT 19%' }] }] });
    viaDefinition = await clinic(srv.base, { id: 'defn', slots: 2, startMinutes: 4 * 1440 });
    foreign = await clinic(srv.base, { id: 'chf', fee: 50, currency: 'USD', slots: 1, startMinutes: 5 * 1440, orgExtensions: [{ url: `${SD}/billing-currency`, valueCode: 'CHF' }] });
    await http('POST', `${srv.base}/ChargeItemDefinition`, { body: {
      resourceType: 'ChargeItemDefinition', url: 'https://clinic.example/fees/consultation', status: 'active', instance: [{ reference: viaDefinition.org }],
      propertyGroup: [{ priceComponent: [{ type: 'base', amount: { value: 65.5, currency: 'EUR' } }] }],
    } });
    ann = await registerPatient(srv.url, 'ann@billing.example', 'Ann');
    await registerPatient(srv.url, 'ben@billing.example', 'Ben');
    annToken = (await userToken(srv.running, 'ann@billing.example', PASSWORD, 'launch/patient patient/*.cruds')).access_token;
    benToken = (await userToken(srv.running, 'ben@billing.example', PASSWORD, 'launch/patient patient/*.cruds')).access_token;
  }, 90_000);
  afterAll(async () => {
    await srv?.close();
    await smtp?.close();
  });

  it('a booked appointment with the role\'s fee gets a ChargeItem and an issued Invoice shaped as CONTRACT.md says', async () => {
    const a = await book(plain.slots[0]!, ann);
    expect(a.status).toBe(201);
    const inv = await invoiceOf(srv.base, ann, a.body.id);
    expect(inv).toMatchObject({ status: 'issued', subject: { reference: ann }, issuer: { reference: plain.org }, participant: [{ actor: { reference: plain.role } }] });
    expect(inv.identifier[0]).toEqual({ system: 'https://medivoy.example/fhir/invoice-number', value: expect.stringMatching(/^INV-\d{6}-0001$/) });
    expect(inv.identifier[0].value.slice(4, 10)).toBe(new Date().toISOString().slice(0, 7).replace('-', ''));
    expect(inv.totalNet).toMatchObject({ value: 80, currency: 'EUR' });
    expect(minor(inv.totalGross)).toBe(8000);
    expect(minor(ext(inv, 'invoice-patient-share').valueMoney)).toBe(8000);
    expect(inv.lineItem[0].priceComponent.map((c: any) => [c.type, minor(c.amount)])).toEqual([['base', 8000], ['tax', 0]]);
    const charge = (await http('GET', `${srv.base}/${inv.lineItem[0].chargeItemReference.reference}`)).body;
    expect(charge).toMatchObject({ status: 'billed', subject: { reference: ann }, supportingInformation: [{ reference: `Appointment/${a.body.id}` }], performer: [{ actor: { reference: plain.role } }] });
    expect(minor(charge.priceOverride)).toBe(8000);
    // Booking again (the hook runs once per booking): still one invoice for the appointment.
    expect((await http('GET', `${srv.base}/Invoice?subject=${ann}`)).body.entry).toHaveLength(1);
  });

  it('applies the Organization\'s tax rule, and a ChargeItemDefinition when the role has no fee', async () => {
    const a = await book(taxed.slots[0]!, ann);
    const inv = await invoiceOf(srv.base, ann, a.body.id);
    expect(inv.lineItem[0].priceComponent.map((c: any) => [c.type, minor(c.amount)])).toEqual([['base', 1999], ['tax', 380]]);
    expect(inv.lineItem[0].priceComponent[1]).toMatchObject({ factor: 0.19, code: { text: 'VAT 19%' } });
    expect([minor(inv.totalNet), minor(inv.totalGross)]).toEqual([1999, 2379]);
    const b = await book(viaDefinition.slots[0]!, ann);
    const inv2 = await invoiceOf(srv.base, ann, b.body.id);
    expect(minor(inv2.totalGross)).toBe(6550);
    expect(inv2.identifier[0].value).not.toBe(inv.identifier[0].value);
  });

  it('a fee in another currency than the Organization bills in issues no invoice (the booking stands)', async () => {
    const a = await book(foreign.slots[0]!, ann);
    expect(a.status).toBe(201);
    expect(await invoiceOf(srv.base, ann, a.body.id)).toBeUndefined();
  });

  it('shows the patient\'s share after insurance (copay, deductible) as separate lines', async () => {
    const payor = (await http('POST', `${srv.base}/Organization`, { body: { resourceType: 'Organization', name: 'Acme Health', extension: [{ url: 'http://medivoy.example/fhir/StructureDefinition/payer-rules', extension: [{ url: 'in-force', valueBoolean: true }, { url: 'deductible', valueMoney: { value: 30, currency: 'EUR' } }, { url: 'copay', valueMoney: { value: 15, currency: 'EUR' } }] }] } })).body;
    const pat = (await http('POST', `${srv.base}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Insured' }] } })).body;
    const cov = (await http('POST', `${srv.base}/Coverage`, { body: {
      resourceType: 'Coverage', status: 'active', beneficiary: { reference: `Patient/${pat.id}` }, subscriber: { reference: `Patient/${pat.id}` }, subscriberId: 'M-1', payor: [{ reference: `Organization/${payor.id}` }],
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'EHCPOL' }] }, class: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'plan' }] }, value: 'GOLD' }], period: { start: '2020-01-01' },
    } })).body;
    const elig = await http('POST', `${srv.base}/CoverageEligibilityRequest/$submit`, { body: { resourceType: 'CoverageEligibilityRequest', status: 'active', purpose: ['benefits'], patient: { reference: `Patient/${pat.id}` }, created: new Date().toISOString().slice(0, 10), insurer: { reference: `Organization/${payor.id}` }, insurance: [{ coverage: { reference: `Coverage/${cov.id}` } }] } });
    expect(elig.status).toBe(201);
    const a = await book(plain.slots[1]!, `Patient/${pat.id}`);
    const inv = await invoiceOf(srv.base, `Patient/${pat.id}`, a.body.id);
    // 80.00: the patient pays 30.00 deductible + 15.00 copay; the insurer 35.00 (a deduction).
    expect(inv.lineItem[0].priceComponent.find((c: any) => c.type === 'deduction')).toMatchObject({ amount: { value: 35 } });
    expect(inv.lineItem.slice(1).map((l: any) => [l.chargeItemCodeableConcept.coding[0].code, minor(l.priceComponent[0].amount)])).toEqual([['deductible', 3000], ['copay', 1500]]);
    expect(minor(ext(inv, 'invoice-patient-share').valueMoney)).toBe(4500);
    expect(minor(inv.totalGross)).toBe(8000);
  });

  it('stores the PDF as Binary + DocumentReference, mails it to the patient, and lets only its patient (and staff) download it', async () => {
    const inv = (await http('GET', `${srv.base}/Invoice?subject=${ann}&_count=50`)).body.entry.map((e: any) => e.resource).find((i: any) => i.participant[0].actor.reference === plain.role);
    const number = inv.identifier[0].value;
    const docs = (await http('GET', `${srv.base}/DocumentReference?related=Invoice/${inv.id}`)).body.entry;
    expect(docs).toHaveLength(1);
    expect(docs[0].resource).toMatchObject({ status: 'current', subject: { reference: ann }, content: [{ attachment: { contentType: 'application/pdf', title: `${number}.pdf` } }] });
    const mine = await http('GET', `${srv.base}/Invoice/${inv.id}/$pdf`, { token: annToken });
    expect(mine.status).toBe(200);
    expect(mine.body).toMatchObject({ resourceType: 'Binary', contentType: 'application/pdf' });
    const pdf = Buffer.from(mine.body.data, 'base64');
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect((await http('GET', `${srv.base}/Invoice/${inv.id}/$pdf`)).status).toBe(200); // staff (system token)
    expect((await http('GET', `${srv.base}/Invoice/${inv.id}/$pdf`, { token: benToken })).status).toBe(404);
    // The Binary itself (outside the Patient compartment) follows its Invoice: another patient cannot read,
    // search, change or delete it.
    const binary = docs[0].resource.content[0].attachment.url;
    expect((await http('GET', `${srv.base}/${binary}`, { token: annToken })).status).toBe(200);
    expect((await http('GET', `${srv.base}/${binary}`, { token: benToken })).status).toBe(404);
    expect((await http('GET', `${srv.base}/${binary}/_history`, { token: benToken })).status).toBe(404);
    expect((await http('DELETE', `${srv.base}/${binary}`, { token: benToken })).status).toBe(404);
    expect((await http('DELETE', `${srv.base}/${binary}`, { token: annToken })).status).toBe(403);
    expect((await http('GET', `${srv.base}/${binary}`)).status).toBe(200);
    const mail = smtp.inbox.find((m) => m.subject === `Invoice ${number}`);
    expect(mail?.to).toEqual(['ann@billing.example']);
    expect(mail?.body).toContain(`filename=${number}.pdf`);
    expect(mail?.body).toContain('application/pdf');
    expect(smtp.inbox.filter((m) => m.subject === `Invoice ${number}`)).toHaveLength(1);
  });

  it('answers an unknown invoice with 404', async () => {
    const res = await http('GET', `${srv.base}/Invoice/nope/$pdf`);
    expect(res.status).toBe(404);
    expect(res.body.resourceType).toBe('OperationOutcome');
  });
});

describe('invoice numbers from two server processes', () => {
  it('are unique and without gaps when bookings race on both', async () => {
    const pair = await startInstancePair({});
    try {
      const base = (u: string) => `${u}/fhir`;
      const c = await clinic(base(pair.a.url), { id: 'race', fee: 40, slots: 16 });
      const patient = (await http('POST', `${base(pair.a.url)}/Patient`, { body: { resourceType: 'Patient', name: [{ family: 'Racer' }] } })).body.id;
      const results = await Promise.all(c.slots.map((slot, i) => http('POST', `${base(i % 2 ? pair.b.url : pair.a.url)}/Appointment/$book`, { body: params({ slot, patient: `Patient/${patient}` }) })));
      expect(results.map((r) => r.status)).toEqual(c.slots.map(() => 201));
      const all = (await http('GET', `${base(pair.a.url)}/Invoice?subject=Patient/${patient}&_count=100`)).body.entry.map((e: any) => e.resource.identifier[0].value as string);
      const seqs = all.map((n: string) => Number(n.slice(-4))).sort((x: number, y: number) => x - y);
      expect(seqs).toEqual(c.slots.map((_, i) => i + 1));
    } finally {
      await pair.close();
    }
  }, 120_000);
});
