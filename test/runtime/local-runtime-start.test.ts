// startLocalRuntime failing part-way: what it started before the failure is stopped, not left running.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { startLocalRuntime } from '../../bin/runtime/local-runtime.js';

/** A fresh data folder, removed when the test ends. */
function dataFolder(): string {
  const dataDir = mkdtempSync(join(tmpdir(), 'bulwark-start-'));
  onTestFinished(() => rmSync(dataDir, { recursive: true, force: true }));
  return dataDir;
}

/** This process's child processes (the embedded DynamoDB runs as one). */
function childPids(): string[] {
  return readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').split(' ').filter(Boolean);
}

describe('startLocalRuntime failing to start', () => {
  it('stops what it started when its port is in use, so a retry on the same data folder starts', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const { port } = holder.address() as AddressInfo;
    const dataDir = dataFolder();
    const childrenBefore = childPids();

    await expect(startLocalRuntime({ port, dataDir })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(childPids()).toEqual(childrenBefore);

    const runtime = await startLocalRuntime({ port: 0, dataDir });
    onTestFinished(() => runtime.stop().then(() => undefined));
    expect((await fetch(`${runtime.url}/health`)).status).toBe(200);
  });

  it('removes its temporary SMS outbox (no data folder) when its port is in use', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const { port } = holder.address() as AddressInfo;
    // A temporary folder of the test's own, so other files' runtimes cannot put their SMS outboxes in it.
    const temporary = dataFolder();
    vi.stubEnv('TMPDIR', temporary);
    onTestFinished(() => {
      vi.unstubAllEnvs();
    });

    await expect(startLocalRuntime({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(readdirSync(temporary).filter((name) => name.startsWith('bulwark-sms-'))).toEqual([]);
  });

  it('stops its embedded DynamoDB when the tables cannot be created', async () => {
    const childrenBefore = childPids();
    // DynamoDB table names have at least 3 characters.
    await expect(
      startLocalRuntime({ port: 0, dataDir: dataFolder(), tableNames: { app: 'a', toolkit: 'b' } }),
    ).rejects.toThrow();
    expect(childPids()).toEqual(childrenBefore);
  });
});
