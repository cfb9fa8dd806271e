import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { errors } from '../fhir/outcomes.js';

/** Addresses never notified unless the allow-list names them: loopback, private, link-local, shared, unspecified. */
const INTERNAL = new BlockList();
for (const [net, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.168.0.0', 16], ['192.0.0.0', 24], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) INTERNAL.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) INTERNAL.addSubnet(net, bits, 'ipv6');

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * SUBSCRIPTION_ENDPOINT_ALLOWLIST: comma-separated host names (`hooks.example.org`), wildcards (`*.example.org`),
 * IP addresses or CIDR ranges (`127.0.0.1`, `10.1.0.0/16`), or `*` (any host with public addresses). A rest-hook
 * endpoint must match an entry, and every address its host resolves to must be public or inside an IP entry:
 * a name that resolves to a loopback or private address is refused unless that address is allowed. The same
 * check runs again when connecting (DNS may change), and redirects are never followed (see rest-hook.ts).
 */
export class EndpointPolicy {
  private readonly hosts: string[] = [];
  private readonly wildcards: string[] = [];
  private readonly ips = new BlockList();
  private anyPublic = false;

  constructor(entries: string[]) {
    for (const raw of entries.map((e) => e.trim().toLowerCase()).filter(Boolean)) {
      if (raw === '*') this.anyPublic = true;
      else if (raw.startsWith('*.')) this.wildcards.push(raw.slice(1));
      else if (raw.includes('/')) {
        const [net, bits] = raw.split('/');
        const family = isIP(net!);
        if (!family || !/^\d+$/.test(bits!)) throw new Error(`SUBSCRIPTION_ENDPOINT_ALLOWLIST: '${raw}' is not a CIDR range`);
        this.ips.addSubnet(net!, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
      } else if (isIP(raw.replace(/^\[|\]$/g, ''))) {
        const ip = raw.replace(/^\[|\]$/g, '');
        this.ips.addAddress(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4');
      } else this.hosts.push(raw);
    }
  }

  private ipAllowed(ip: string): boolean {
    const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (this.ips.check(ip, family)) return true;
    return !INTERNAL.check(ip, family) && !(family === 'ipv6' && /^::ffff:/i.test(ip) && INTERNAL.check(ip.slice(7), 'ipv4'));
  }

  private hostListed(host: string): boolean {
    return this.anyPublic || this.hosts.includes(host) || this.wildcards.some((w) => host.endsWith(w) && host.length > w.length);
  }

  /** Throws 422 when `endpoint` may not be notified (not listed, or resolving to an address that is not allowed). */
  async check(endpoint: string): Promise<void> {
    const host = new URL(endpoint).hostname.toLowerCase().replace(/^\[|\]$/g, '');
    const refuse = (why: string) => errors.businessRule(`Subscription.channel.endpoint ${endpoint} is not allowed: ${why} (SUBSCRIPTION_ENDPOINT_ALLOWLIST)`, ['Subscription.channel.endpoint']);
    if (isIP(host)) {
      if (this.ips.check(host, isIP(host) === 6 ? 'ipv6' : 'ipv4')) return;
      if (!this.anyPublic) throw refuse('the address is not on the allow-list');
      if (!this.ipAllowed(host)) throw refuse('loopback and private addresses are not notified');
      return;
    }
    if (!this.hostListed(host)) throw refuse('the host is not on the allow-list');
    let addrs: LookupAddress[];
    try {
      addrs = await new Promise<LookupAddress[]>((resolve, reject) => dnsLookup(host, { all: true }, (err, a) => (err ? reject(err) : resolve(a))));
    } catch {
      throw refuse('the host name does not resolve');
    }
    const blocked = addrs.find((a) => !this.ipAllowed(a.address));
    if (blocked) throw refuse(`it resolves to ${blocked.address}, a loopback or private address`);
  }

  /** A `lookup` for http.request that refuses addresses the policy does not allow (checked again at connect time). */
  readonly lookup = (hostname: string, options: { all?: boolean; family?: number }, cb: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addrs) => {
      if (err) return cb(err, []);
      const ok = addrs.filter((a) => this.ipAllowed(a.address));
      if (!ok.length) return cb(Object.assign(new Error(`${hostname} resolves only to addresses the allow-list does not permit`), { code: 'EADDRNOTALLOWED' }), []);
      if (options.all) cb(null, ok);
      else cb(null, ok[0]!.address, ok[0]!.family);
    });
  };

  /** Whether an IP-literal endpoint is allowed right now (http.request does not call lookup for those). */
  literalAllowed(host: string): boolean {
    const ip = host.replace(/^\[|\]$/g, '');
    return !isIP(ip) || this.ips.check(ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4') || (this.anyPublic && this.ipAllowed(ip));
  }
}
