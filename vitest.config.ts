// Test suite configuration: one embedded DynamoDB for the whole run, coverage enforced on the toolkit.
import { defineConfig } from 'vitest/config';
import { WatchdogReporter } from './test/watchdog-reporter.js';

// The AWS SDK warns in every process under Node 20 that its 2027 releases will need Node 22 (the Lambda
// runtime here is nodejs22.x); this also covers the global setup, which runs in this process.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup.ts'],
    pool: 'forks',
    // Vitest's default on a 2-core machine is one worker, which ran the files one by one in about
    // 9 minutes; most of their time is spent waiting on sockets and timers, and two take about 6.
    maxWorkers: 2,
    // A run five times that long is stuck, and is ended with what was still running named, long
    // before CI's own limit would end it without a word.
    reporters: ['default', new WatchdogReporter(30 * 60_000)],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    env: {
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      // Like the log level above: functions under test emit EMF lines on every request; tests that
      // read metrics turn them back on (test/helpers/log-capture.ts, enableMetricsOutput).
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_DEV: 'false',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    },
    coverage: {
      provider: 'v8',
      include: ['middleware/**/*.ts'],
      reporter: ['text-summary', 'json-summary'],
      thresholds: { lines: 90, branches: 90 },
    },
  },
});
