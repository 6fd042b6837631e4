// A dependency that hangs: for tests that every client gives up on it in time.
import { createServer } from 'node:net';
import { type LoopbackServer, listenOnLoopback } from './loopback-server.js';

/** A TCP server on 127.0.0.1 that accepts connections and never answers. */
export function silentServer(): Promise<LoopbackServer> {
  return listenOnLoopback(createServer());
}
