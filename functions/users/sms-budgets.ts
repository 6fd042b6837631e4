// What an SMS code may cost: each phone number's budget, each region's and the whole deployment's, shared by the fleet through the rate limiter.
import { ConflictError } from '../../middleware/errors.js';
import { emitEvent } from '../../middleware/events.js';
import { recordMetric } from '../../middleware/metrics/record.js';
import type { CounterStore } from '../../middleware/rate-limit/counter-store.js';
import {
  RateLimiter,
  type RateLimitResult,
  rateLimitHitEvent,
} from '../../middleware/rate-limit/rate-limiter.js';
import type { SmsEnvironment } from '../shared/environment.js';
import type { FunctionObservability } from '../shared/observability.js';
import { isSmsDestination, phoneRegion } from '../shared/phone.js';
import type { SmsAdmission, SmsBudgetName, SmsPurpose } from './registration-emails.js';
import { smsPerNumberPolicy } from './users-model.js';

/** The deployment's SMS budget as a GCRA policy: a burst of `perHour`, then one every hour / `perHour`. */
export function smsDeploymentPolicy(sms: SmsEnvironment) {
  return { name: 'sms-deployment', limit: sms.perHour, windowSec: 60 * 60 } as const;
}

/** Each region's SMS budget as a GCRA policy, of the same shape. */
export function smsRegionPolicy(sms: SmsEnvironment) {
  return { name: 'sms-region', limit: sms.perRegionPerHour, windowSec: 60 * 60 } as const;
}

/** The deployment budget's one key. */
const deploymentKey = 'deployment';
const regionKey = (region: string) => `region:${region}`;

export interface SmsBudgetsOptions {
  /** Where the budgets count: the route limits' store on the toolkit table (`rateLimitStore()`). */
  readonly store: CounterStore;
  /** The allowed regions and the deployment's and regions' budgets. */
  readonly sms: SmsEnvironment;
  /** A number's key in its own budget: a blind index, so the toolkit table holds no phone number. */
  readonly numberKey: (phoneNumber: string) => Promise<string>;
  /** Where refusals are logged, audited and counted. */
  readonly observability: Pick<FunctionObservability, 'logger' | 'auditLogger' | 'metrics' | 'onEvent'>;
}

/** One budget's unit taken for an SMS, to give back if the SMS is not sent. */
interface TakenUnit {
  readonly limiter: RateLimiter;
  readonly key: string;
  readonly result: RateLimitResult;
}

/**
 * The SMS budgets of the users function. Each SMS takes a unit of its number's budget (five a day:
 * repeats to one phone), of its region's and of the deployment's (an hour's worth each: SMS pumping
 * spreads over many numbers, so only these bound what anyone can make the deployment send). The number's
 * budget fails open like the route limits; the region's and the deployment's fail closed, so a store
 * outage never lifts the cost cap: the SMS is then not sent (a 503 for a requested code).
 */
export class SmsBudgets {
  readonly #perNumber: RateLimiter;
  readonly #perRegion: RateLimiter;
  readonly #deployment: RateLimiter;
  readonly #options: SmsBudgetsOptions;

  constructor(options: SmsBudgetsOptions) {
    this.#options = options;
    const { store, sms, observability } = options;
    const shared = { store, onEvent: observability.onEvent, logger: observability.logger };
    this.#perNumber = new RateLimiter({ ...shared, policy: smsPerNumberPolicy });
    this.#perRegion = new RateLimiter({ ...shared, policy: smsRegionPolicy(sms), failMode: 'closed' });
    this.#deployment = new RateLimiter({ ...shared, policy: smsDeploymentPolicy(sms), failMode: 'closed' });
  }

  /**
   * Takes a unit of each budget for one SMS to `phoneNumber`, or none: the first budget that is spent
   * refuses the SMS, and the units the others gave are given back. A refusal is audited as rateLimit.hit
   * and, for a requested code (`phone-code`, answered 429), counted as RateLimited; a region's or the
   * deployment's also counts SmsBudgetExhausted. A number of a region SMS codes no longer go to is a
   * 409 (stored before SMS_REGIONS changed). A store outage of the region's or the deployment's budget
   * throws its 503, with every unit given back.
   */
  async admit(phoneNumber: string, purpose: SmsPurpose): Promise<SmsAdmission> {
    const region = await phoneRegion(phoneNumber);
    const { regions } = this.#options.sms;
    if (!isSmsDestination(phoneNumber, region, regions)) {
      throw new ConflictError(
        `SMS codes are no longer sent to ${region !== undefined && !regions.includes(region) ? `numbers of ${region}` : 'this number'}`,
      );
    }
    const budgets: [SmsBudgetName, RateLimiter, string][] = [
      ['number', this.#perNumber, await this.#options.numberKey(phoneNumber)],
      ['region', this.#perRegion, regionKey(region)],
      ['deployment', this.#deployment, deploymentKey],
    ];
    const taken: TakenUnit[] = [];
    try {
      for (const [budget, limiter, key] of budgets) {
        const result = await limiter.consume(key);
        if (!result.allowed) {
          await giveBack(taken);
          this.#reportRefusal(budget, limiter, result, purpose, region);
          return { allowed: false, retryAfterSec: result.retryAfterSec, refusedBy: budget };
        }
        taken.push({ limiter, key, result });
      }
    } catch (error) {
      await giveBack(taken);
      throw error;
    }
    return { allowed: true, refund: () => giveBack(taken) };
  }

  #reportRefusal(
    budget: SmsBudgetName,
    limiter: RateLimiter,
    result: RateLimitResult,
    purpose: SmsPurpose,
    region: string,
  ): void {
    const { auditLogger, metrics, onEvent } = this.#options.observability;
    const event = rateLimitHitEvent(limiter.policy.name, result, {
      keyBy: budget === 'number' ? 'phone' : budget,
      ...(budget === 'region' ? { region } : {}),
    });
    // RateLimited counts 429s: a registration past a budget is still a 201, without its SMS.
    if (purpose === 'phone-code') emitEvent(onEvent, event);
    else auditLogger.logSecurityEvent(event);
    if (budget !== 'number') recordMetric(metrics, 'SmsBudgetExhausted', { dimensions: { budget } });
  }
}

/** Gives every unit back; RateLimiter.refund never throws for a unit it gave (a store failure is reported). */
async function giveBack(taken: readonly TakenUnit[]): Promise<void> {
  await Promise.all(taken.map(({ limiter, key, result }) => limiter.refund(key, result)));
}
