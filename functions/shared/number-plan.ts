// libphonenumber-js/core over a metadata set read as JSON: phone.ts imports this with import(), so neither loads before the first number.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type MetadataJson, type PhoneNumber, parsePhoneNumberFromString } from 'libphonenumber-js/core';

/** `max`: every range of every plan (is a number assigned); `min`: country codes and lengths only. */
export type MetadataSet = 'min' | 'max';

/**
 * A parser over one metadata set. The set is read as a package file rather than bundled as code
 * (157 KB for `max`): the stack copies it into the bundle's node_modules/ (lib/bulwark-stack.ts),
 * where this resolves it as the sources resolve it from the repository's.
 */
export function numberPlan(set: MetadataSet): (text: string) => PhoneNumber | undefined {
  const file = createRequire(import.meta.url).resolve(`libphonenumber-js/metadata.${set}.json`);
  const metadata = JSON.parse(readFileSync(file, 'utf8')) as MetadataJson;
  return (text) => parsePhoneNumberFromString(text, metadata);
}
