// Email addresses with an internationalised domain, spelled the one way mail systems and indexes compare,
// and domains that can never receive mail.
import { domainToASCII } from 'node:url';

/**
 * `address` with its domain in ASCII (IDNA, `bob@bücher.de` is `bob@xn--bcher-kva.de`), so both spellings
 * name one mailbox. An ASCII domain, and an address with no `@`, stay exactly as they are; a domain that
 * has no ASCII form (`domainToASCII` gives '') also stays, for the address check to refuse. The local
 * part is never touched.
 *
 * @example
 * withAsciiDomain('Bob@Bücher.de'); // 'Bob@xn--bcher-kva.de'
 */
export function withAsciiDomain(address: string): string {
  const at = address.lastIndexOf('@');
  const domain = address.slice(at + 1);
  if (at === -1 || !/[\u0080-\uffff]/.test(domain)) return address;
  const ascii = domainToASCII(domain);
  return ascii === '' ? address : `${address.slice(0, at + 1)}${ascii}`;
}

/**
 * Whether `address`'s domain is one IDNA can write in ASCII (`domainToASCII` gives more than ''), checked
 * for a domain already in ASCII too: `xn--.com` and `xn--zz.com` are punycode that decodes to no valid
 * name, so no domain at all, and {@link withAsciiDomain} leaves them for the address check, which reads
 * only their letters. True for a string with no `@`, which the address check refuses.
 *
 * @example
 * hasIdnaDomain('bob@xn--bcher-kva.de'); // true
 * hasIdnaDomain('a@xn--zz.com'); // false
 */
export function hasIdnaDomain(address: string): boolean {
  const at = address.lastIndexOf('@');
  return at === -1 || domainToASCII(address.slice(at + 1)) !== '';
}

/**
 * What SMTP and the DNS carry (RFC 5321 4.5.3.1, RFC 1035 2.3.4), in octets, which for an address with an
 * ASCII local part and its domain in ASCII (IDNA, as {@link withAsciiDomain} writes it) are its
 * characters: a local part of 64, a domain label of 63, and a whole address of 254 (the 256 of a path
 * less its `<>`), which holds the domain to 252, inside DNS's 253. No mail server takes a longer one, so
 * every email to it would bounce.
 */
export const emailLengthLimits = { localPart: 64, domainLabel: 63, address: 254 } as const;

/**
 * Whether `address` (its domain in ASCII) fits one of {@link emailLengthLimits}: its local part (before
 * the last `@`), its longest domain label, or the whole. True for a string with no `@`, which the
 * address check refuses.
 *
 * @example
 * fitsEmailLengthLimit(`${'a'.repeat(65)}@example.com`, 'localPart'); // false
 */
export function fitsEmailLengthLimit(address: string, part: keyof typeof emailLengthLimits): boolean {
  const at = address.lastIndexOf('@');
  if (at === -1) return true;
  const lengths = {
    localPart: at,
    domainLabel: Math.max(
      ...address
        .slice(at + 1)
        .split('.')
        .map((label) => label.length),
    ),
    address: address.length,
  };
  return lengths[part] <= emailLengthLimits[part];
}

/**
 * Names that no public resolver will ever give a mail server for, so mail to them can only bounce (and
 * every bounce counts against the sender's reputation): `test`, `example`, `invalid` and `localhost`
 * (RFC 2606, special-use by RFC 6761), `local` (multicast DNS, RFC 6762), `onion` (Tor, RFC 7686), `alt`
 * (names outside the DNS, RFC 9476), `home.arpa` (home networks, RFC 8375) and `internal` (kept by ICANN
 * for private networks, 2024, never to be delegated). Not the second-level `example.com`, `.net` and
 * `.org` (RFC 2606 too, and also without mail): this project's tests and walkthroughs register with them,
 * so a deployment mailing them bounces like any address that does not exist (see README, Emails).
 */
export const undeliverableMailSuffixes = [
  'test',
  'example',
  'invalid',
  'localhost',
  'local',
  'onion',
  'alt',
  'home.arpa',
  'internal',
] as const;

/**
 * The reserved name `address`'s domain is, or lies under (one of `undeliverableMailSuffixes`), compared
 * without case and a final root dot; undefined for any other domain, and for a string with no `@`.
 *
 * @example
 * undeliverableMailSuffix('Z@Mail.TEST'); // 'test'
 * undeliverableMailSuffix('ada@example.com'); // undefined
 */
export function undeliverableMailSuffix(address: string): string | undefined {
  const at = address.lastIndexOf('@');
  if (at === -1) return undefined;
  const domain = address
    .slice(at + 1)
    .toLowerCase()
    .replace(/\.$/, '');
  return undeliverableMailSuffixes.find((suffix) => domain === suffix || domain.endsWith(`.${suffix}`));
}
