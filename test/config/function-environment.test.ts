// The sample functions' environment readers: every problem named at once, never a value, and health without a schema library.
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { readEnvironment } from '../../functions/shared/environment.js';
import { readTableEnvironment } from '../../functions/shared/table-environment.js';

const tables = { APP_TABLE_NAME: 'app', TOOLKIT_TABLE_NAME: 'toolkit' };

describe('readTableEnvironment', () => {
  it('reads the two tables and the local endpoint', () => {
    expect(readTableEnvironment({ ...tables, DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000' })).toEqual({
      appTableName: 'app',
      toolkitTableName: 'toolkit',
      dynamoDbEndpoint: 'http://127.0.0.1:8000',
    });
    expect(readTableEnvironment(tables).dynamoDbEndpoint).toBeUndefined();
  });

  it.each([
    [{}, 'APP_TABLE_NAME, TOOLKIT_TABLE_NAME'],
    [{ ...tables, APP_TABLE_NAME: '' }, 'APP_TABLE_NAME'],
    [{ ...tables, DYNAMODB_ENDPOINT: 'ftp://secret-host:21' }, 'DYNAMODB_ENDPOINT'],
    [{ TOOLKIT_TABLE_NAME: 't', DYNAMODB_ENDPOINT: 'not a url' }, 'APP_TABLE_NAME, DYNAMODB_ENDPOINT'],
  ])('names every missing or invalid variable and no value: %j', (env, names) => {
    expect(() => readTableEnvironment(env)).toThrow(new Error(`Invalid function environment: ${names}`));
  });
});

describe('readEnvironment', () => {
  it('names the table problems together with the rest of the configuration', () => {
    expect(() => readEnvironment({ TOOLKIT_TABLE_NAME: 't', AUTH_ISSUER: 'not a url' })).toThrow(
      new Error('Invalid function environment: APP_TABLE_NAME, AUTH_ISSUER'),
    );
  });

  it('keeps the tables it read next to the rest', () => {
    expect(readEnvironment({ ...tables, BULWARK_STAGE: 'dev' })).toMatchObject({
      appTableName: 'app',
      toolkitTableName: 'toolkit',
      dynamoDbEndpoint: undefined,
      encryption: { production: false },
    });
  });
});

it('leaves the schema library out of the health function, which reads only its tables', async () => {
  const result = await build({
    entryPoints: ['functions/health/handler.ts'],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    outdir: 'unused',
    metafile: true,
    logLevel: 'silent',
  });
  const [output] = Object.values(result.metafile.outputs);
  const kept = Object.entries(output?.inputs ?? {})
    .filter(([, input]) => input.bytesInOutput > 0)
    .map(([path]) => path);
  expect(kept).toContain('functions/shared/table-environment.ts');
  expect(kept.filter((path) => path.includes('node_modules/zod/'))).toEqual([]);
});
