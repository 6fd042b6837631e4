// The full libphonenumber number plan for registration, imported with import() by the register schema: the parser from libphonenumber-js/core, its metadata read as JSON.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type MetadataJson, parsePhoneNumberFromString as parseWith } from 'libphonenumber-js/core';

/**
 * Read as a package file, not bundled as code: 157 KB that a cold start would otherwise carry in
 * index.mjs. The stack copies it into the bundle's node_modules/ (lib/bulwark-stack.ts), where this
 * resolves it as the sources resolve it from the repository's.
 */
const metadata = JSON.parse(
  readFileSync(createRequire(import.meta.url).resolve('libphonenumber-js/metadata.max.json'), 'utf8'),
) as MetadataJson;

export function parsePhoneNumberFromString(text: string) {
  return parseWith(text, metadata);
}
