// Captures what Powertools Logger and Metrics write (their JSON lines on stdout/stderr) so tests can parse them.
import { afterEach, beforeEach, vi } from 'vitest';
import type { AuditEvent } from '../../middleware/audit/audit-event.js';

export interface EmfLine {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [key: string]: unknown;
}

export interface CapturedOutput {
  /** Every line written to stdout or stderr since the test started. */
  readonly lines: () => string[];
  /** Lines that are JSON objects, parsed. */
  readonly json: () => Record<string, unknown>[];
  /** The `audit` objects of audit lines. */
  readonly audit: () => AuditEvent[];
  /** Embedded Metric Format lines. */
  readonly emf: () => EmfLine[];
  readonly clear: () => void;
}

function parse(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Registers hooks that record stdout and stderr for each test of the file (Powertools writes through
 * its own `Console` on the process streams, so spying on `write` sees every line) without echoing it.
 */
export function captureStdout(): CapturedOutput {
  let buffer: string[] = [];
  beforeEach(() => {
    buffer = [];
    const record = (chunk: string | Uint8Array) => {
      buffer.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    };
    vi.spyOn(process.stdout, 'write').mockImplementation(record);
    // Powertools writes ERROR and WARN lines to stderr; Lambda sends both streams to CloudWatch Logs.
    vi.spyOn(process.stderr, 'write').mockImplementation(record);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  const lines = () =>
    buffer
      .join('')
      .split('\n')
      .filter((line) => line.length > 0);
  const json = () => lines().flatMap<Record<string, unknown>>((line) => parse(line) ?? []);
  return {
    lines,
    json,
    audit: () => json().flatMap((line) => (line.audit ? [line.audit as AuditEvent] : [])),
    emf: () => json().flatMap((line) => (line._aws ? [line as EmfLine] : [])),
    clear: () => {
      buffer = [];
    },
  };
}

/**
 * Turns Powertools Metrics output back on for this test file (the suite disables it to keep its
 * output readable). Call it at the top of the file, before any Metrics is created.
 */
export function enableMetricsOutput(): void {
  process.env.POWERTOOLS_METRICS_DISABLED = 'false';
}

/**
 * Everything in an EMF line that disagrees with the metric catalog: namespace, metric names, units,
 * dimension sets, and the dimension and metric values the line must carry.
 */
export function emfProblems(
  line: EmfLine,
  catalog: Readonly<Record<string, { unit: string; dimensions: readonly string[] }>>,
  namespace: string,
): string[] {
  const problems: string[] = [];
  for (const directive of line._aws.CloudWatchMetrics) {
    if (directive.Namespace !== namespace) problems.push(`namespace ${directive.Namespace}`);
    for (const metric of directive.Metrics) {
      const definition = catalog[metric.Name];
      if (!definition) {
        problems.push(`${metric.Name} is not in the catalog`);
        continue;
      }
      if (metric.Unit !== definition.unit) problems.push(`${metric.Name} unit ${metric.Unit}`);
      const dimensionSets = directive.Dimensions.map((set) => [...set].sort().join(','));
      const expected = [...definition.dimensions].sort().join(',');
      if (!dimensionSets.every((set) => set === expected)) {
        problems.push(`${metric.Name} dimensions ${dimensionSets.join(' | ')} (catalog: ${expected})`);
      }
      if (line[metric.Name] === undefined) problems.push(`${metric.Name} has no value`);
      for (const dimension of definition.dimensions) {
        if (typeof line[dimension] !== 'string') problems.push(`${metric.Name} lacks dimension ${dimension}`);
      }
    }
  }
  return problems;
}
