// Runs a scheduled function on an interval with EventBridge's scheduled event, as its schedule does in AWS.
import { randomUUID } from 'node:crypto';
import type { ScheduledEvent } from 'aws-lambda';
import { assertNoProblems } from '../../middleware/errors.js';

/** What EventBridge hands a function its schedule invokes. */
export function scheduledEvent(ruleName: string, time: Date = new Date()): ScheduledEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '000000000000',
    time: time.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: process.env.AWS_REGION ?? 'us-east-1',
    resources: [`arn:aws:events:local:000000000000:rule/${ruleName}`],
    detail: {},
  };
}

export interface IntervalScheduleOptions {
  /** The function's name, which also names its rule in the event. */
  readonly name: string;
  /** Milliseconds from the end of one run to the start of the next. */
  readonly intervalMs: number;
  readonly invoke: (event: ScheduledEvent) => Promise<unknown>;
  /**
   * A run that failed: Lambda would count an error and, by its asynchronous default (the stack sets no other),
   * try the event up to twice more; here the next run is the next interval's.
   */
  readonly onError: (error: unknown) => void;
}

/**
 * Invokes a function every `intervalMs`, the first time one interval after `start()`. Unlike EventBridge,
 * which invokes at a fixed rate whatever runs are still going, a run starts only once the one before has
 * ended: here one execution environment runs the function, so a second run would only wait for it.
 */
export class IntervalSchedule {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  /** Milliseconds between two runs. */
  readonly intervalMs: number;

  constructor(private readonly options: IntervalScheduleOptions) {
    this.intervalMs = options.intervalMs;
    assertNoProblems(
      `${options.name} schedule`,
      !Number.isSafeInteger(options.intervalMs) || options.intervalMs < 1
        ? ['intervalMs must be a whole number of milliseconds, 1 or more']
        : [],
    );
  }

  start(): void {
    this.stopped = false;
    this.next();
  }

  /** Stops scheduling runs and waits for the run in progress, if any. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private next(): void {
    this.timer = setTimeout(() => {
      this.running = this.options
        .invoke(scheduledEvent(this.options.name))
        .then(
          () => undefined,
          (error: unknown) => this.options.onError(error),
        )
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.next();
        });
    }, this.intervalMs);
  }
}
