import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { FunctionHost, FunctionTimeoutError } from '../../bin/runtime/function-host.js';

// A handler module that records when each invocation starts and ends, and waits as long as its event says.
const handlerSource = `
export const spans = [];
export async function handler(event, context) {
  const span = { id: event.id, start: performance.now(), remainingMs: context.getRemainingTimeInMillis() };
  spans.push(span);
  await new Promise((resolve) => setTimeout(resolve, event.waitMs));
  span.end = performance.now();
  return event.id;
}
`;

function hostWith(names: readonly string[], timeoutSec = 5) {
  const rootDir = mkdtempSync(join(tmpdir(), 'bulwark-function-host-'));
  onTestFinished(() => rmSync(rootDir, { recursive: true, force: true }));
  writeFileSync(join(rootDir, 'handler.mjs'), handlerSource);
  const host = new FunctionHost(
    rootDir,
    names.map((name) => ({ name, entry: 'handler.mjs', memoryMb: 128, timeoutSec })),
  );
  const spans = async () => ((await import(join(rootDir, 'handler.mjs'))) as { spans: Span[] }).spans;
  return { host, spans };
}

interface Span {
  id: string;
  start: number;
  end?: number;
  remainingMs: number;
}

describe('FunctionHost', () => {
  it('runs one invocation of a function at a time, as one execution environment does', async () => {
    const { host, spans } = hostWith(['orders']);
    const results = await Promise.all(['a', 'b', 'c'].map((id) => host.invoke('orders', { id, waitMs: 40 })));
    expect(results).toEqual(['a', 'b', 'c']);
    const [a, b, c] = await spans();
    expect(b?.start).toBeGreaterThanOrEqual(a?.end as number);
    expect(c?.start).toBeGreaterThanOrEqual(b?.end as number);
  });

  it('counts the timeout from when an invocation starts, not from when it began to wait', async () => {
    const { host, spans } = hostWith(['orders'], 1);
    await Promise.all([
      host.invoke('orders', { id: 'first', waitMs: 600 }),
      host.invoke('orders', { id: 'second', waitMs: 600 }),
    ]);
    const second = (await spans()).find((span) => span.id === 'second');
    expect(second?.remainingMs).toBeGreaterThan(900);
  });

  it('lets the next invocation run after one times out or fails', async () => {
    const { host } = hostWith(['orders'], 0.05);
    const slow = host.invoke('orders', { id: 'slow', waitMs: 200 });
    const next = host.invoke('orders', { id: 'next', waitMs: 0 });
    await expect(slow).rejects.toBeInstanceOf(FunctionTimeoutError);
    await expect(next).resolves.toBe('next');
  });

  it('runs different functions side by side', async () => {
    const { host, spans } = hostWith(['orders', 'payments']);
    await Promise.all([
      host.invoke('orders', { id: 'order', waitMs: 100 }),
      host.invoke('payments', { id: 'payment', waitMs: 100 }),
    ]);
    const [first, second] = await spans();
    expect(second?.start).toBeLessThan(first?.end as number);
  });
});
