// What the README examples take as given ("your store", "onEvent: see Audit logs"): stand-ins the tests fill.
import type { SecurityEvent } from '../../../middleware/index.js';

export interface Invite {
  readonly team: string;
  readonly acceptedAt?: string;
  readonly failedAttempts: number;
}

/** The invitation store the errors example reads. */
export const invites = {
  byCode: new Map<string, Invite>(),
  async find(code: string): Promise<Invite | undefined> {
    return this.byCode.get(code);
  },
};

/** Every event the examples' onEvent received. */
export const events: SecurityEvent[] = [];

export const onEvent = (event: SecurityEvent): void => {
  events.push(event);
};
