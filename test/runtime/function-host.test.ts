import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { FunctionHost, FunctionTimeoutError } from '../../bin/runtime/function-host.js';
import { testTableNames } from '../helpers/tables.js';

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

/**
 * A handler module that counts its inits and records each call with the instance that ran it, in a global
 * (`key`), so calls are seen whichever import ran them. Without `waitMs` a call never ends.
 */
const resettableSource = (key: string) => `
const state = (globalThis[${JSON.stringify(key)}] ??= { inits: 0, calls: [] });
const instance = ++state.inits;
export async function handler(event) {
  const call = { id: event.id, instance, start: performance.now() };
  state.calls.push(call);
  await new Promise((resolve) => event.waitMs !== undefined && setTimeout(resolve, event.waitMs));
  call.end = performance.now();
  return event.id;
}
`;

interface ResettableState {
  inits: number;
  calls: { id: string; instance: number; start: number; end?: number }[];
}

/** A host of one function, `slow`, over {@link resettableSource}, with the reset lines it logs. */
function resettableHost(timeoutSec: number) {
  const rootDir = mkdtempSync(join(tmpdir(), 'bulwark-function-host-'));
  onTestFinished(() => {
    rmSync(rootDir, { recursive: true, force: true });
    delete (globalThis as Record<string, unknown>)[rootDir];
  });
  writeFileSync(join(rootDir, 'resettable.mjs'), resettableSource(rootDir));
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  onTestFinished(() => warn.mockRestore());
  const host = new FunctionHost(
    rootDir,
    [{ name: 'slow', entry: 'resettable.mjs', memoryMb: 128, timeoutSec, tableActions: {} }],
    testTableNames,
  );
  const state = () => (globalThis as Record<string, unknown>)[rootDir] as ResettableState;
  const resetLines = () => warn.mock.calls.map(([line]) => JSON.parse(String(line)) as unknown);
  return { host, state, resetLines };
}

function hostWith(names: readonly string[], timeoutSec = 5) {
  const rootDir = mkdtempSync(join(tmpdir(), 'bulwark-function-host-'));
  onTestFinished(() => rmSync(rootDir, { recursive: true, force: true }));
  writeFileSync(join(rootDir, 'handler.mjs'), handlerSource);
  const host = new FunctionHost(
    rootDir,
    names.map((name) => ({ name, entry: 'handler.mjs', memoryMb: 128, timeoutSec, tableActions: {} })),
    testTableNames,
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
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    onTestFinished(() => warn.mockRestore());
    const slow = host.invoke('orders', { id: 'slow', waitMs: 200 });
    const next = host.invoke('orders', { id: 'next', waitMs: 0 });
    await expect(slow).rejects.toBeInstanceOf(FunctionTimeoutError);
    await expect(next).resolves.toBe('next');
  });

  it('after a timeout, starts the next invocation once the timed-out one ends, on a fresh module', async () => {
    const { host, state, resetLines } = resettableHost(0.2);
    await host.loadAll();
    const slow = host.invoke('slow', { id: 'slow', waitMs: 300 });
    const next = host.invoke('slow', { id: 'next', waitMs: 0 });
    await expect(slow).rejects.toBeInstanceOf(FunctionTimeoutError);
    await expect(next).resolves.toBe('next');
    await expect(host.invoke('slow', { id: 'warm', waitMs: 0 })).resolves.toBe('warm');
    const { inits, calls } = state();
    expect(inits).toBe(2);
    expect(calls.map(({ id, instance }) => [id, instance])).toEqual([
      ['slow', 1],
      ['next', 2],
      ['warm', 2],
    ]);
    const [slowCall, nextCall] = calls;
    expect(nextCall?.start).toBeGreaterThanOrEqual(slowCall?.end as number);
    expect(resetLines()).toEqual([
      {
        level: 'WARN',
        message: 'Function reset after a timeout: the next invocation starts cold',
        function: 'bulwark-slow',
        timedOutRequestId: expect.any(String),
        timedOutInvocation: 'ended',
      },
    ]);
  });

  it('holds the next invocation after a timeout for at most the function’s timeout again', async () => {
    const { host, state, resetLines } = resettableHost(0.2);
    await host.loadAll();
    const stuck = host.invoke('slow', { id: 'stuck' });
    const next = host.invoke('slow', { id: 'next', waitMs: 0 });
    await expect(stuck).rejects.toBeInstanceOf(FunctionTimeoutError);
    await expect(next).resolves.toBe('next');
    const [stuckCall, nextCall] = state().calls;
    expect(stuckCall?.end).toBeUndefined();
    expect(nextCall?.instance).toBe(2);
    // The timeout, then the grace: 200 ms each (a timer may fire a millisecond early by performance.now()).
    expect((nextCall?.start as number) - (stuckCall?.start as number)).toBeGreaterThanOrEqual(398);
    expect(resetLines()).toMatchObject([{ timedOutInvocation: 'still running 200 ms after its timeout' }]);
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
