// libphonenumber's smallest number plan (country codes and lengths), imported with import() by the SMS schema: the parser alone, so the bundle carries no more of libphonenumber.
export { parsePhoneNumberFromString } from 'libphonenumber-js/min';
