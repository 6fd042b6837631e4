// Email addresses with an internationalised domain, spelled the one way mail systems and indexes compare.
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
