import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';

const repositoryRoot = fileURLToPath(new URL('..', import.meta.url));
const fixtureConfig = fileURLToPath(new URL('./fixtures/watchdog/vitest.config.ts', import.meta.url));

/** Runs vitest on the watchdog fixture in a process of its own: its exit code and what it printed. */
function runFixture(env: {
  BLOCK: 'sync' | 'async';
  BLOCK_MS: number;
  WATCHDOG_LIMIT_MS: number;
  TEARDOWN_MS?: number;
}) {
  return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url)),
        'run',
        '--config',
        fixtureConfig,
      ],
      {
        cwd: repositoryRoot,
        env: {
          ...process.env,
          BLOCK: env.BLOCK,
          BLOCK_MS: String(env.BLOCK_MS),
          WATCHDOG_LIMIT_MS: String(env.WATCHDOG_LIMIT_MS),
          TEARDOWN_MS: String(env.TEARDOWN_MS ?? 0),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output: stripVTControlCharacters(output) }));
  });
}

/**
 * The limit for runs the watchdog is to end while the fixture's test or the teardown is still going. It counts
 * the whole run, the fixture's start-up included: forking the worker and importing the fixture took up to
 * 1.6 s beside one busy core, and a 2 s limit under heavier load ended runs before the file started.
 */
const limitMs = 8000;
/**
 * Past the limit, so the fixture still blocks or waits when the watchdog ends the run, and no more: the
 * blocked worker outlives that run, its core busy until the block ends.
 */
const blockMs = limitMs + 4000;

// Past the block, so a watchdog that never fires fails on what the run printed.
describe('the test-run watchdog', { timeout: 40_000 }, () => {
  it('ends a run whose test blocks its worker past the limit, naming the file and, if it was told, the test', async () => {
    const { code, output } = await runFixture({
      BLOCK: 'sync',
      BLOCK_MS: blockMs,
      WATCHDOG_LIMIT_MS: limitMs,
    });
    expect(code).toBe(1);
    expect(output).toContain(`Test run stopped: still running after ${limitMs / 1000} s`);
    // Whether the blocked test's start reached the reporter first depends on when its worker last reported.
    expect(output).toMatch(
      / {2}blocked\.fixture\.ts, started \d+ s ago\n {4}(- takes its time, started \d+ s ago|\(no test of it reported running: its worker may be blocked\))\n/,
    );
    expect(output).not.toMatch(/Tests\s+1 passed/);
  });

  it('names the test that is still waiting', async () => {
    // Its test must have started by the limit: beside a full suite, the fixture's start-up once took 8 s.
    const waitingLimitMs = 2 * limitMs;
    const { code, output } = await runFixture({
      BLOCK: 'async',
      BLOCK_MS: waitingLimitMs + (blockMs - limitMs),
      WATCHDOG_LIMIT_MS: waitingLimitMs,
    });
    expect(code).toBe(1);
    expect(output).toMatch(
      / {2}blocked\.fixture\.ts, started \d+ s ago\n {4}- takes its time, started \d+ s ago\n/,
    );
  });

  it('ends a run stuck after its tests, in the global teardown', async () => {
    const { code, output } = await runFixture({
      BLOCK: 'async',
      BLOCK_MS: 10,
      WATCHDOG_LIMIT_MS: limitMs,
      TEARDOWN_MS: blockMs,
    });
    expect(code).toBe(1);
    expect(output).toMatch(/Tests\s+1 passed/);
    expect(output).toMatch(
      /Every test had ended \d+ s ago: stuck after them \(coverage, global teardown\)\./,
    );
  });

  it('lets a run that ends within the limit end as it would, without a report', async () => {
    const { code, output } = await runFixture({ BLOCK: 'sync', BLOCK_MS: 50, WATCHDOG_LIMIT_MS: 60_000 });
    expect(code).toBe(0);
    expect(output).toMatch(/Tests\s+1 passed/);
    expect(output).not.toContain('Test run stopped');
  });
});
