// The toolkit's public API.
export type { AuthMethod, Principal } from './auth/principal.js';
export * from './errors.js';
export * from './events.js';
export * from './http/input.js';
export * from './http/middy.js';
export * from './http/problem.js';
export * from './http/response.js';
export * from './store/client.js';
export * from './store/create-tables.js';
export * from './store/tables.js';
