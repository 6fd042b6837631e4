// Shared shape of benchmark results, and the table printer.

export interface Target {
  /** The ratio (value / baseline) to reach. */
  readonly ratio: number;
  /** Whether a higher ratio is better (throughput) or a lower one (latency, overhead). */
  readonly better: 'higher' | 'lower';
}

export interface Measurement {
  readonly id: string;
  readonly what: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline: { readonly name: string; readonly value: number };
  readonly target?: Target;
}

export interface BenchResult extends Measurement {
  readonly ratio: number;
  readonly target?: Target;
  readonly meets?: boolean;
}

/** A benchmark module's default export. */
export interface BenchSuite {
  readonly name: string;
  run(): Promise<Measurement[]>;
}

export function toResult(measurement: Measurement): BenchResult {
  const ratio =
    measurement.baseline.value === 0 ? Number.NaN : measurement.value / measurement.baseline.value;
  const { target } = measurement;
  if (!target) return { ...measurement, ratio };
  const meets = target.better === 'higher' ? ratio >= target.ratio : ratio <= target.ratio;
  return { ...measurement, ratio, meets };
}

const format = (value: number) =>
  Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(2);

export function renderTable(results: readonly BenchResult[]): string {
  const rows = results.map((result) => [
    result.id,
    result.what,
    `${format(result.value)} ${result.unit}`,
    `${result.baseline.name}: ${format(result.baseline.value)} ${result.unit}`,
    `${format(result.ratio)}×`,
    result.target ? `${result.target.better === 'higher' ? '≥' : '≤'} ${format(result.target.ratio)}×` : '—',
    result.meets === undefined ? '—' : result.meets ? 'yes' : 'NO',
  ]);
  const header = ['id', 'what', 'value', 'baseline', 'ratio', 'target', 'meets'];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** The p-th percentile (0–100) of a list of samples. */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

/** Times `count` sequential calls (after `warmup` untimed ones) and returns each duration in ms. */
export async function timeSequential(
  count: number,
  call: (index: number) => Promise<void>,
  warmup = 50,
): Promise<number[]> {
  for (let index = 0; index < warmup; index += 1) await call(index);
  const samples: number[] = [];
  for (let index = 0; index < count; index += 1) {
    const started = performance.now();
    await call(warmup + index);
    samples.push(performance.now() - started);
  }
  return samples;
}

/** Polls `probe` every 5 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitUntil(probe: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`${what} did not arrive in time`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
