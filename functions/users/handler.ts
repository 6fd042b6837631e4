// The users function: register, get, and the admin list and delete routes.
import { z } from 'zod';
import { validateInput } from '../../middleware/http/middy.js';
import { json, noContent } from '../../middleware/http/response.js';
import { createDocumentClient, createDynamoDbClient } from '../../middleware/store/client.js';
import { createFunctionEncryptor } from '../shared/encryption.js';
import { readEnvironment, readQueueEnvironment } from '../shared/environment.js';
import { createHttpFunction } from '../shared/http-function.js';
import { functionObservability } from '../shared/observability.js';
import { phoneSchema } from '../shared/phone.js';
import { idPathSchema, pageQuerySchema } from '../shared/schemas.js';
import { createSqsClient } from '../shared/sqs-client.js';
import { RegistrationEmails } from './registration-emails.js';
import { UsersModel } from './users-model.js';

const { logger, auditLogger, onEvent } = functionObservability('users');
const environment = readEnvironment();
const users = new UsersModel(
  createDocumentClient(createDynamoDbClient({ endpoint: environment.dynamoDbEndpoint })),
  environment.appTableName,
  createFunctionEncryptor(environment, onEvent),
);
const queues = readQueueEnvironment();
const registrationEmails = new RegistrationEmails({
  sqs: queues.emailQueueUrl ? createSqsClient(queues.sqsEndpoint) : undefined,
  queues,
  logger,
  auditLogger,
});

const registerBody = z.strictObject({
  email: z.email().max(254),
  name: z.string().trim().min(1).max(100),
  phone: phoneSchema.optional(),
});

export const handler = createHttpFunction(
  'users',
  {
    'POST /users': (route) =>
      route.use(validateInput({ body: registerBody })).handler(async (_event, context) => {
        const user = await users.register(context.input.body);
        // After the write: an email never goes out for a registration that did not happen.
        await registrationEmails.enqueue(user, context.correlationId);
        return json(201, user);
      }),

    'GET /users/{id}': (route) =>
      route
        .use(validateInput({ path: idPathSchema }))
        .handler(async (_event, { input }) => json(200, await users.get(input.path.id))),

    'GET /admin/users': (route) =>
      route
        .use(validateInput({ query: pageQuerySchema }))
        .handler(async (_event, { input }) =>
          json(200, await users.list(input.query.limit, input.query.cursor)),
        ),

    'DELETE /admin/users/{id}': (route) =>
      route.use(validateInput({ path: idPathSchema })).handler(async (_event, { input, principal }) => {
        const user = await users.delete(input.path.id);
        // Seed 001's log_admin_action: who deleted whom, as an audit line (ids only, no personal data).
        auditLogger.logAdminAction('user.deleted', { targetUserId: user.id }, principal);
        return noContent();
      }),
  },
  logger,
);
