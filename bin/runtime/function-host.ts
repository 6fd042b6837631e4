// Loads the functions' handler modules in-process and invokes them with a Lambda context and timeout.

import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Context } from 'aws-lambda';
import type { TableAccess } from '../../functions/routes.js';
import type { TableDefinition } from '../../middleware/store/tables.js';
import { enforceTableGrants, runWithTableGrants, type TableGrants, tableGrantsOf } from './table-grants.js';

/** A function as its table declares it; its `TableAccess` is what its role may do on the tables. */
export interface HostedFunction extends TableAccess {
  /** Function name as in the route table; deployed as `bulwark-<name>`. */
  readonly name: string;
  readonly entry: string;
  readonly memoryMb: number;
  readonly timeoutSec: number;
}

/** A hosted function with what its `TableAccess` grants, resolved to the tables' names. */
interface GrantedFunction extends HostedFunction {
  readonly tableGrants: TableGrants;
}

type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

/** The handler ran past its timeout; Lambda would have stopped it. */
export class FunctionTimeoutError extends Error {
  constructor(functionName: string, timeoutSec: number) {
    super(`${functionName}: Task timed out after ${timeoutSec.toFixed(2)} seconds`);
    this.name = 'FunctionTimeoutError';
  }
}

function createContext(definition: HostedFunction, deadline: number): Context {
  const functionName = `bulwark-${definition.name}`;
  const unsupported = () => {
    throw new Error('Callback-style context methods are not supported; return a value instead');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: String(definition.memoryMb),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/${functionName}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}

/**
 * Hosts each function as one Lambda execution environment: its module is loaded once and runs one
 * invocation at a time, so Powertools' per-invocation state (log keys, correlation id, metrics) never
 * mixes two requests. Where AWS would start another environment, a concurrent call here waits its turn.
 *
 * After a timeout Lambda resets the environment, and the next invocation starts cold. In-process the
 * timed-out call cannot be stopped, so the function's next invocation waits until that call settles (or
 * for a grace as long as the function's timeout, so a call that never settles cannot hold the function
 * forever) and then runs on a fresh import of the entry module, whose init runs again. Only the entry is
 * imported afresh: the modules it imports, and whatever the abandoned call still holds, are shared.
 *
 * Each function's code, its init as well as its invocations, runs with its role's DynamoDB grants: a call
 * its `tableActions` (per table) or `queriedIndexes` (Query per index) do not allow fails with
 * AccessDeniedException, as IAM would refuse it in AWS (see table-grants.ts).
 */
export class FunctionHost {
  private readonly handlers = new Map<string, Promise<LambdaHandler>>();
  /** Per function, the invocation the next one waits for. */
  private readonly lastInvocation = new Map<string, Promise<unknown>>();
  /** Per function, how many times a timeout has reset it: the query string of its next fresh import. */
  private readonly resets = new Map<string, number>();
  private readonly definitions: readonly GrantedFunction[];

  /** `tableNames`: the names of the tables the functions' `TableAccess` names by id. */
  constructor(
    private readonly rootDir: string,
    definitions: readonly HostedFunction[],
    tableNames: Readonly<Record<TableDefinition['id'], string>>,
  ) {
    this.definitions = definitions.map((definition) => ({
      ...definition,
      tableGrants: tableGrantsOf(definition.name, definition, tableNames),
    }));
    enforceTableGrants();
  }

  /** Imports every handler module now, so a broken function fails start-up rather than a request. */
  async loadAll(): Promise<void> {
    await Promise.all(this.definitions.map((definition) => this.load(definition)));
  }

  private load(definition: GrantedFunction): Promise<LambdaHandler> {
    let handler = this.handlers.get(definition.name);
    if (!handler) {
      handler = this.importHandler(definition);
      this.handlers.set(definition.name, handler);
    }
    return handler;
  }

  private async importHandler(definition: GrantedFunction): Promise<LambdaHandler> {
    const url = new URL(pathToFileURL(resolve(this.rootDir, definition.entry)));
    const reset = this.resets.get(definition.name);
    // A URL the module cache has not seen evaluates the module again, tsx-compiled TypeScript too.
    if (reset !== undefined) url.searchParams.set('bulwark-reset', String(reset));
    const module = (await runWithTableGrants(definition.tableGrants, () => import(url.href))) as {
      handler?: unknown;
    };
    if (typeof module.handler !== 'function')
      throw new Error(`${definition.entry} does not export a handler`);
    return module.handler as LambdaHandler;
  }

  /**
   * Invokes like Lambda, after the function's invocation in flight: the promise rejects with
   * {@link FunctionTimeoutError} at the function's timeout, counted from when this invocation starts.
   */
  invoke(name: string, event: unknown): Promise<unknown> {
    const definition = this.definitions.find((candidate) => candidate.name === name);
    if (!definition) return Promise.reject(new Error(`Unknown function ${name}`));
    const invocation = (this.lastInvocation.get(name) ?? Promise.resolve()).then(() =>
      this.run(definition, event),
    );
    this.lastInvocation.set(
      name,
      invocation.catch(() => undefined),
    );
    return invocation;
  }

  private async run(definition: GrantedFunction, event: unknown): Promise<unknown> {
    const handler = await this.load(definition);
    const timeoutMs = definition.timeoutSec * 1000;
    const context = createContext(definition, Date.now() + timeoutMs);
    const pending = Promise.resolve(
      runWithTableGrants(definition.tableGrants, () => handler(event, context)),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Before the rejection releases the next invocation, so that one waits for the reset.
        this.resetAfter(definition, pending, context.awsRequestId);
        reject(new FunctionTimeoutError(context.functionName, definition.timeoutSec));
      }, timeoutMs);
    });
    try {
      return await Promise.race([pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Replaces the function's handler with one that is loaded afresh once `abandoned` settles or the grace
   * ends, so the invocations after a timeout wait for it and then start cold.
   */
  private resetAfter(definition: GrantedFunction, abandoned: Promise<unknown>, requestId: string): void {
    const graceMs = definition.timeoutSec * 1000;
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<false>((resolveGrace) => {
      graceTimer = setTimeout(() => resolveGrace(false), graceMs);
    });
    const settled = abandoned.then(
      () => true as const,
      () => true as const,
    );
    const fresh = Promise.race([settled, graceOver]).then((abandonedSettled) => {
      clearTimeout(graceTimer);
      this.resets.set(definition.name, (this.resets.get(definition.name) ?? 0) + 1);
      console.warn(
        JSON.stringify({
          level: 'WARN',
          message: 'Function reset after a timeout: the next invocation starts cold',
          function: `bulwark-${definition.name}`,
          timedOutRequestId: requestId,
          timedOutInvocation: abandonedSettled ? 'ended' : `still running ${graceMs} ms after its timeout`,
        }),
      );
      return this.importHandler(definition);
    });
    this.handlers.set(definition.name, fresh);
  }
}
