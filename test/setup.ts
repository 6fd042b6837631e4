// Per-file setup: point every client at the suite's embedded DynamoDB before any module reads the environment.
import fc from 'fast-check';
import { inject } from 'vitest';
import { testTableNames } from './helpers/tables.js';

process.env.DYNAMODB_ENDPOINT = inject('dynamoDbEndpoint');
process.env.APP_TABLE_NAME = testTableNames.app;
process.env.TOOLKIT_TABLE_NAME = testTableNames.toolkit;
// Every file's functions read and write the same tables, so they share the suite's key.
process.env.ENCRYPTION_KEY = inject('encryptionKey');

// Property tests draw from one fixed seed, so a run is repeatable; FC_SEED=<n> explores other inputs.
fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20_261_204) });
