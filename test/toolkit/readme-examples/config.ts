// README, "Configuration and secrets": a configuration loader kept at module scope, and getSecret.
import * as z from 'zod';
import { configureSecretStore, createConfigLoader, getSecret } from '../../../middleware/index.js';
import { onEvent } from './scaffolding.js';

// onEvent: createSecurityEventListener (see Audit logs)

// load() validates once, then reuses the result until the secret it read is maxAgeSec old (300 s) and reads
// it again: a rotated PARTNER_TOKEN is used within 5 minutes, with no cold start
const partner = createConfigLoader(z.object({ PARTNER_URL: z.url(), PARTNER_TOKEN: z.string().min(20) }), {
  secretId: 'bulwark/partner',
  onEvent,
});

export async function partnerRequest(path: string): Promise<Request> {
  const { PARTNER_URL, PARTNER_TOKEN } = await partner.load();
  return new Request(new URL(path, PARTNER_URL), { headers: { authorization: `Bearer ${PARTNER_TOKEN}` } });
}

// getSecret reads through one shared SecretStore, made with the defaults at the first read; this replaces it
configureSecretStore({ onEvent, maxAgeSec: 600 });
export const partnerWebhookKey = (): Promise<string> => getSecret('bulwark/partner-webhook-key');
