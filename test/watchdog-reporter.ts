// Ends a test run that has gone on far past its usual few minutes and names what was still running, so
// a hang fails in minutes with its culprit instead of at CI's own time limit with no word of where.
import type { Reporter, TestCase, TestModule } from 'vitest/node';

export class WatchdogReporter implements Reporter {
  private readonly modulesRunning = new Map<TestModule, number>();
  private readonly testsRunning = new Map<TestCase, number>();
  private timer: NodeJS.Timeout | undefined;
  private runEndedAt: number | undefined;

  /** @param limitMs how long a whole run may take */
  constructor(private readonly limitMs: number) {}

  onTestRunStart(): void {
    clearTimeout(this.timer);
    this.runEndedAt = undefined;
    this.timer = setTimeout(() => this.expire(), this.limitMs);
    // Never what keeps the process alive: a run that ends on time just ends.
    this.timer.unref();
  }

  onTestModuleStart(testModule: TestModule): void {
    this.modulesRunning.set(testModule, Date.now());
  }

  onTestModuleEnd(testModule: TestModule): void {
    this.modulesRunning.delete(testModule);
  }

  onTestCaseReady(testCase: TestCase): void {
    this.testsRunning.set(testCase, Date.now());
  }

  onTestCaseResult(testCase: TestCase): void {
    this.testsRunning.delete(testCase);
  }

  /** The timer stays: coverage and the global teardown come after, and can hang too. */
  onTestRunEnd(): void {
    this.runEndedAt = Date.now();
  }

  /** Every file still running and, under it, its tests that have not ended. */
  private report(): string {
    const now = Date.now();
    const seconds = (since: number) => `${Math.round((now - since) / 1000)} s`;
    const lines = [
      `Test run stopped: still running after ${Math.round(this.limitMs / 1000)} s (test/watchdog-reporter.ts).`,
    ];
    if (this.runEndedAt !== undefined) {
      lines.push(
        `Every test had ended ${seconds(this.runEndedAt)} ago: stuck after them (coverage, global teardown).`,
      );
    } else if (this.modulesRunning.size === 0) {
      lines.push('No test file was running: stuck outside them (global setup, collecting files).');
    }
    for (const [testModule, startedAt] of this.modulesRunning) {
      lines.push(`  ${testModule.relativeModuleId}, started ${seconds(startedAt)} ago`);
      const tests = [...this.testsRunning].filter(([testCase]) => testCase.module === testModule);
      for (const [testCase, testStartedAt] of tests) {
        lines.push(`    - ${testCase.fullName}, started ${seconds(testStartedAt)} ago`);
      }
      // A worker reports its tests' starts in batches: one that blocks its event loop may not have sent its own.
      if (tests.length === 0) lines.push('    (no test of it reported running: its worker may be blocked)');
    }
    return `${lines.join('\n')}\n`;
  }

  private expire(): void {
    process.stderr.write(this.report());
    process.exit(1);
  }
}
