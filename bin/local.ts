// `npm start`: runs the whole sample system on 127.0.0.1 with data under .bulwark/.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { routes } from '../functions/routes.js';
import { repositoryRoot, startLocalRuntime } from './runtime/local-runtime.js';

// The SDK's notice that its 2027 releases need Node 22 is for maintainers (see README), not every start.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const dataDir = join(repositoryRoot, '.bulwark');
mkdirSync(dataDir, { recursive: true });

const runtime = await startLocalRuntime({ port: Number(process.env.PORT ?? 3000), dataDir });

// A ready-made admin token, so the curl lines below work at once; `npm run token` makes others.
const adminToken = await runtime.auth.devIssuer.mint({
  sub: 'alice',
  roles: ['admin'],
  expiresInSec: 12 * 3600,
});

const pathWidth = Math.max(...routes.map((route) => route.path.length));
const routeLines = routes.map(
  (route) => `    ${route.method.padEnd(6)} ${route.path.padEnd(pathWidth)} ${route.summary}`,
);
console.log(
  [
    '',
    'Bulwark local runtime',
    `  API              ${runtime.url}`,
    `  DynamoDB         ${runtime.dynamoDbEndpoint}  (tables ${runtime.tableNames.app}, ${runtime.tableNames.toolkit})`,
    `                   aws dynamodb scan --table-name ${runtime.tableNames.app} --endpoint-url ${runtime.dynamoDbEndpoint}`,
    `  Data folder      ${dataDir}`,
    `  Outbox           ${runtime.outboxDir}  (every email as an .eml file, SMTP sink ${runtime.smtp.host}:${runtime.smtp.port}; every SMS as a .sms.txt file)`,
    `  SQS              ${runtime.sqs.endpoint}  (queues ${Object.keys(runtime.sqs.queueUrls).join(', ')})`,
    '  Routes',
    ...routeLines,
    '',
    `  Try: curl -s ${runtime.url}/health`,
    `  Dev issuer       ${runtime.auth.devIssuer.issuer} (JWKS ${runtime.url}/.well-known/jwks.json, key in ${dataDir})`,
    `  Admin token      export TOKEN=${adminToken}`,
    `                   curl -s -H "Authorization: Bearer $TOKEN" "${runtime.url}/admin/users?limit=5"`,
    '                   more: npm run -s token -- --sub bob | --m2m --client-id svc-x --scope bookings/write',
    '  Function logs (Powertools JSON) follow. Ctrl-C stops everything.',
    '',
  ].join('\n'),
);

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping`);
  runtime.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
