// The full libphonenumber number plan, imported with import() by the registration schema: the parser alone, so the bundle carries no more of libphonenumber.
export { parsePhoneNumberFromString } from 'libphonenumber-js/max';
