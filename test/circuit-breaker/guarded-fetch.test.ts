import { describe, expect, it, vi } from 'vitest';
import { CircuitBreaker } from '../../middleware/circuit-breaker/circuit-breaker.js';
import { guardedFetch } from '../../middleware/circuit-breaker/guarded-fetch.js';
import { MemoryCircuitStateStore } from '../../middleware/circuit-breaker/memory-store.js';
import { DependencyError } from '../../middleware/errors.js';

function breaker() {
  return new CircuitBreaker<Response>({
    name: 'stream-dep',
    store: new MemoryCircuitStateStore(),
    timeoutMs: 2000,
    logger: { warn: vi.fn(), info: vi.fn() },
  });
}

/** An endless answer of 60-byte chunks, counting what was read and whether it was cancelled. */
function endlessStream() {
  const seen = { pulls: 0, cancels: 0 };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        seen.pulls += 1;
        controller.enqueue(new Uint8Array(60).fill(97));
      },
      cancel() {
        seen.cancels += 1;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

describe('guardedFetch reading the answer', () => {
  it('stops at the chunk that passes maxResponseBytes and cancels the rest of the stream', async () => {
    const { stream, seen } = endlessStream();
    const fetch = vi.fn(async () => new Response(stream));
    const error = await guardedFetch(
      breaker(),
      'https://dep.example/x',
      {},
      { fetch, maxResponseBytes: 100 },
    ).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(DependencyError);
    expect((error as DependencyError).message).toBe('stream-dep answered more than 100 bytes');
    expect(seen).toEqual({ pulls: 2, cancels: 1 });
  });

  it('returns every chunk of a streamed answer within the limit, in order', async () => {
    const chunks = ['ab', 'cd', 'e'].map((text) => new TextEncoder().encode(text));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    const fetch = vi.fn(async () => new Response(stream, { status: 201 }));
    const response = await guardedFetch(
      breaker(),
      'https://dep.example/x',
      {},
      { fetch, maxResponseBytes: 5 },
    );
    expect(response.status).toBe(201);
    expect(await response.text()).toBe('abcde');
  });

  it('gives fetch a body member only when the request has a body', async () => {
    const fetch = vi.fn(
      async (_url: string | URL | Request, _init?: RequestInit) => new Response(null, { status: 204 }),
    );
    await guardedFetch(breaker(), 'https://dep.example/x', { method: 'GET' }, { fetch });
    await guardedFetch(breaker(), 'https://dep.example/x', { method: 'GET', body: undefined }, { fetch });
    await guardedFetch(breaker(), 'https://dep.example/x', { method: 'POST', body: '{}' }, { fetch });
    const inits = fetch.mock.calls.map(([, init]) => init);
    expect(inits.map((init) => init !== undefined && 'body' in init)).toEqual([false, false, true]);
    expect(inits[2]?.body).toBe('{}');
    expect(inits.map((init) => init?.redirect)).toEqual(['manual', 'manual', 'manual']);
  });
});
