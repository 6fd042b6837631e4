// `npm start`'s entry (bin/local.ts), the commands its banner prints, and its embedded DynamoDB process, run as the user runs them.
import { type ChildProcess, execFile, fork, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { defaultDataDir, defaultPort, runtimeEnvironmentPrefix } from '../../bin/runtime/local-defaults.js';
import { localEncryptionKey } from '../../bin/runtime/local-key.js';
import { createDynamoDbClient } from '../../middleware/store/client.js';

const repositoryRoot = join(import.meta.dirname, '../..');

// dynalite's LevelDB binding, to hold a store's lock as another process would.
const { Level } = createRequire(createRequire(import.meta.url).resolve('dynalite'))('level') as {
  Level: new (
    path: string,
  ) => {
    open(): Promise<void>;
    put(key: string, value: string): Promise<void>;
    compactRange(start: string, end: string): Promise<void>;
    close(): Promise<void>;
  };
};

interface Started {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** Registers what to undo when the test ends (or, from a `beforeAll`, when its tests have run). */
type WhenDone = (undo: () => void) => void;

/** A fresh data folder, removed when the test ends. */
function dataFolder(whenDone: WhenDone = onTestFinished): string {
  const dataDir = mkdtempSync(join(tmpdir(), 'bulwark-local-'));
  whenDone(() => rmSync(dataDir, { recursive: true, force: true }));
  return dataDir;
}

/** A fresh data folder with its encryption key, as one whose tables hold data has (or the start stops there). */
function dataFolderWithKey(): string {
  const dataDir = dataFolder();
  localEncryptionKey(dataDir);
  return dataDir;
}

/**
 * Starts `npm start`'s entry, or with `viaNpm` `npm start` itself in a process group of its own (as a terminal
 * runs it, so that a signal to the group reaches every process as Ctrl-C does); whatever it started is killed
 * when the test ends, even by a timeout.
 */
function startLocal(
  env: Record<string, string>,
  { viaNpm = false, whenDone = onTestFinished as WhenDone } = {},
): Started {
  const child = viaNpm
    ? spawn('npm', ['start'], {
        cwd: repositoryRoot,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      })
    : spawn(process.execPath, ['--import', 'tsx', 'bin/local.ts'], {
        cwd: repositoryRoot,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
  whenDone(() => {
    try {
      process.kill(viaNpm ? -(child.pid as number) : (child.pid as number), 'SIGKILL');
    } catch {
      // Gone already.
    }
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** The pid of the embedded DynamoDB process `started` forked. */
async function dynamoDbProcessOf(started: Started): Promise<number> {
  const { stdout } = await promisify(execFile)('pgrep', [
    '-P',
    String(started.child.pid),
    '-f',
    'dynamodb-server',
  ]);
  return Number(stdout.trim());
}

/**
 * A GET /health whose body (2 bytes) is sent only in part, once the runtime has taken it: it asks for
 * `100 Continue`, which Node's server sends as it hands the request to the runtime's handler, so the
 * runtime counts it in flight from then on (an idle connection would be closed at once by a stop).
 * `finish()` sends the rest; both resolve with everything the server sent after the 100 once it closes the
 * connection.
 */
async function requestInFlight(
  port: number,
): Promise<{ finish(): Promise<string>; closed: Promise<string> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  const interimAnswer = 'HTTP/1.1 100 Continue\r\n\r\n';
  let answer = '';
  socket.on('error', () => undefined);
  const taken = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.startsWith(interimAnswer)) resolve();
    });
    socket.once('close', () =>
      reject(new Error(`closed before the runtime took the request: ${JSON.stringify(answer)}`)),
    );
  });
  const closed = new Promise<string>((resolve) =>
    socket.once('close', () => resolve(answer.slice(interimAnswer.length))),
  );
  socket.write(
    `GET /health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{`,
  );
  await taken;
  return {
    finish: () => {
      socket.write('}');
      return closed;
    },
    closed,
  };
}

/** Whether `pid` runs: a zombie (dead, not yet reaped by whoever adopted it) does not. */
function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function until(probe: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A start-up's budget: a few seconds alone, but two runtimes starting together on a loaded 2-core machine
 * have taken more than 15 s. It stays under the test's 60 s, so a runtime that never starts fails with
 * this message, and leaves the rest of the test 20 s.
 */
const startUpTimeoutMs = 40_000;

/** Waits for the banner's last line: the runtime is up. */
function untilStarted(started: Started, what = 'the runtime'): Promise<void> {
  return until(() => started.output().includes('Ctrl-C stops everything'), what, startUpTimeoutMs);
}

// Each test starts `tsx bin/local.ts` and waits up to 40 s for its banner, then runs npm commands: a
// minute each, so a loaded machine (4x slower here than alone) still has room.
describe('npm start (bin/local.ts)', { timeout: 60_000 }, () => {
  it('refuses a second runtime on the same data folder, and SIGTERM stops the first cleanly', async () => {
    const dataDir = dataFolder();
    // A pid file left by a killed runtime, whose pid another process has since taken.
    const stranger = spawn('sleep', ['30'], { stdio: 'ignore' });
    onTestFinished(() => {
      stranger.kill('SIGKILL');
    });
    writeFileSync(join(dataDir, 'runtime.pid'), String(stranger.pid));
    const first = startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir, BULWARK_SWEEP_INTERVAL_SEC: '7' });
    await untilStarted(first, 'the first runtime');
    expect(first.output().split('\n')).toContain(
      '  Event sweep      every 7 s: publishes booking events left pending (BULWARK_SWEEP_INTERVAL_SEC)',
    );
    const url = /API\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(first.output())?.[1];
    expect((await fetch(`${url}/health`)).status).toBe(200);

    const second = startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir });
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`another local runtime (pid ${first.child.pid}) is using ${dataDir}`);

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('SIGTERM: stopping');
    expect(existsSync(join(dataDir, 'runtime.pid'))).toBe(false);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });

  // One runtime for the tests that read its banner and send it requests, stopping nothing: each start costs
  // seconds of the machine's two cores.
  describe("started with the shell's retry bases", () => {
    const undo: Array<() => void> = [];
    const whenDone: WhenDone = (step) => {
      undo.push(step);
    };
    let dataDir: string;
    let started: Started;
    beforeAll(async () => {
      // One the runtime creates itself.
      dataDir = join(dataFolder(whenDone), 'data');
      started = startLocal(
        {
          PORT: '0',
          BULWARK_DATA_DIR: dataDir,
          EMAIL_RETRY_BASE_DELAY_SEC: '2',
          // Leading zeros too, as the functions read it.
          WEBHOOK_RETRY_BASE_DELAY_SEC: '01',
        },
        { whenDone },
      );
      await untilStarted(started);
    });
    afterAll(() => {
      for (const step of undo.reverse()) step();
    });

    it("gives the workers the shell's retry bases, so a DLQ drill takes seconds", () => {
      // The banner prints the bases the runtime put into the functions' environment.
      expect(started.output().split('\n')).toContain(
        '  Retry bases      email 2 s, webhooks 1 s (EMAIL_RETRY_BASE_DELAY_SEC, WEBHOOK_RETRY_BASE_DELAY_SEC)',
      );
    });

    it("prints commands that work pasted into a fresh shell: tokens for this runtime's port and data folder, a scan the CLI can sign", async () => {
      const [, url, port] = /API\s+(http:\/\/127\.0\.0\.1:(\d+))/.exec(started.output()) ?? [];
      const endpoint = /DynamoDB\s+(http:\/\/\S+)/.exec(started.output())?.[1];
      const banner = started.output().split('\n');
      expect(banner).toContain(
        `                   AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws dynamodb scan --table-name bulwark-app --region us-east-1 --endpoint-url ${endpoint}`,
      );

      const tokenCommands = banner
        .filter((line) => line.includes('npm run -s token'))
        .map((line) => line.replace(/^\s+(More tokens\s+)?/, ''));
      const prefix = `PORT=${port} BULWARK_DATA_DIR=${dataDir} npm run -s token --`;
      expect(tokenCommands).toEqual([
        `${prefix} --sub bob`,
        `${prefix} --m2m --client-id svc-x --scope bookings/write --scope bookings/read`,
      ]);
      // A fresh shell: neither variable set, as in a second terminal.
      const { PORT: _port, BULWARK_DATA_DIR: _dataDir, ...freshEnvironment } = process.env;
      for (const command of tokenCommands) {
        const { stdout } = await promisify(execFile)('sh', ['-c', command], {
          cwd: repositoryRoot,
          env: freshEnvironment,
        });
        const answer = await fetch(`${url}/bookings`, {
          headers: { authorization: `Bearer ${stdout.trim()}` },
        });
        expect(answer.status).toBe(200);
      }
      // What the runtime and its DynamoDB process wrote is its owner's alone.
      const written = [
        dataDir,
        ...readdirSync(dataDir, { recursive: true, encoding: 'utf8' }).map((entry) => join(dataDir, entry)),
      ];
      expect(written.map((path) => relative(dataDir, path))).toEqual(
        expect.arrayContaining(['', 'runtime.pid', 'outbox', 'dynamodb', 'encryption-key']),
      );
      expect(
        written.filter((path) => (statSync(path).mode & 0o077) !== 0).map((path) => relative(dataDir, path)),
      ).toEqual([]);
    });
  });

  it('refuses a sweep interval of 0 or with a leading zero before starting anything', async () => {
    const dataDir = dataFolder();
    const refused = ['0', '07'].map((seconds) => ({
      seconds,
      started: startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir, BULWARK_SWEEP_INTERVAL_SEC: seconds }),
    }));
    for (const { seconds, started } of refused) {
      expect(await started.exited).toBe(1);
      expect(started.output().split('\n')).toContain(
        `npm start: BULWARK_SWEEP_INTERVAL_SEC must be a whole number of seconds from 1 to 999999 (got "${seconds}")`,
      );
      expect(started.output()).not.toContain('    at ');
    }
    expect(existsSync(join(dataDir, 'runtime.pid'))).toBe(false);
  });

  it('refuses a retry base the workers would refuse, before starting anything', async () => {
    const dataDir = dataFolder();
    const refused = [
      ['EMAIL_RETRY_BASE_DELAY_SEC', '0'],
      ['EMAIL_RETRY_BASE_DELAY_SEC', '3601'],
      ['WEBHOOK_RETRY_BASE_DELAY_SEC', '1.5'],
      ['WEBHOOK_RETRY_BASE_DELAY_SEC', ''],
      ['WEBHOOK_RETRY_BASE_DELAY_SEC', '00'],
    ].map(([variable = '', seconds = '']) => ({
      variable,
      seconds,
      started: startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir, [variable]: seconds }),
    }));
    for (const { variable, seconds, started } of refused) {
      expect(await started.exited).toBe(1);
      expect(started.output().split('\n')).toContain(
        `npm start: ${variable} must be a whole number of seconds from 1 to 3600 (got "${seconds}")`,
      );
      expect(started.output()).not.toContain('    at ');
    }
    expect(existsSync(join(dataDir, 'runtime.pid'))).toBe(false);
  });

  it('refuses a PORT that is no port, before starting anything', async () => {
    // Left to Node, each was a RangeError stack; an empty PORT was port 0, a random one.
    const dataDir = join(dataFolder(), 'data');
    const refused = ['abc', '99999', '', '1.5', '-1', '03000'].map((port) => ({
      port,
      started: startLocal({ PORT: port, BULWARK_DATA_DIR: dataDir }),
    }));
    for (const { port, started } of refused) {
      expect(await started.exited).toBe(1);
      expect(started.output()).toBe(
        `npm start: PORT must be a whole number from 0 (any free port) to 65535, no leading zero (got "${port}")\n`,
      );
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it("refuses a function variable from the shell the function would refuse, with the function's rule, before starting anything", async () => {
    const dataDir = join(dataFolder(), 'data');
    const refused = [
      ['BOOKING_EVENT_GRACE_SEC', 'abc', 'a whole number of seconds from 0 to 86400'],
      ['BOOKING_EVENT_GRACE_SEC', '86401', 'a whole number of seconds from 0 to 86400'],
      ['BOOKING_HORIZON_DAYS', 'abc', 'a whole number of days from 1 to 3650'],
      ['UNVERIFIED_USER_TTL_HOURS', '0', 'a whole number of hours from 1 to 720'],
      ['SMS_REGIONS', 'us', 'region codes such as US or GB, separated by commas'],
      ['SMS_PER_HOUR', '', 'a whole number of SMS from 1 to 1000000'],
      ['SMS_PER_REGION_PER_HOUR', '1000001', 'a whole number of SMS from 1 to 1000000'],
      ['WEBHOOK_MAX_RETRY_DELAY_SEC', '0', 'a whole number of seconds from 1 to 43200'],
      ['WEBHOOK_DISABLE_AFTER_FAILED_DELIVERIES', 'five', 'a whole number of deliveries from 1 to 1000'],
      ['WEBHOOK_DISABLE_AFTER_FAILING_HOURS', '1e3', 'a number of hours from 0 to 720'],
      ['WEBHOOK_MAX_ENDPOINTS_PER_OWNER', '1001', 'a whole number of endpoints from 1 to 1000'],
    ].map(([variable = '', value = '', rule = '']) => ({
      line: `npm start: ${variable} must be ${rule} (got "${value}")\n`,
      started: startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir, [variable]: value }),
    }));
    for (const { line, started } of refused) {
      expect(await started.exited).toBe(1);
      expect(started.output()).toBe(line);
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it('refuses a BULWARK_LOCAL_FAIL naming no function, naming those it takes', async () => {
    const dataDir = join(dataFolder(), 'data');
    const started = startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir, BULWARK_LOCAL_FAIL: 'bookings,user' });
    expect(await started.exited).toBe(1);
    expect(started.output()).toBe(
      'npm start: BULWARK_LOCAL_FAIL must be comma-separated function names of health, users, bookings, ' +
        'webhooks, catch-all (got "bookings,user")\n',
    );
    expect(existsSync(dataDir)).toBe(false);
  });

  it('says in the banner which functions BULWARK_LOCAL_FAIL makes fail, and they do', async () => {
    const started = startLocal({
      PORT: '0',
      BULWARK_DATA_DIR: dataFolder(),
      BULWARK_LOCAL_FAIL: 'users, bookings',
    });
    await untilStarted(started);
    expect(started.output().split('\n')).toContain(
      '  Made to fail     users, bookings: their routes answer 503 (BULWARK_LOCAL_FAIL)',
    );
    const url = /API\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(started.output())?.[1];
    expect((await fetch(`${url}/bookings`)).status).toBe(503);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('says in one line what is wrong with the data folder, naming the file, instead of a stack trace', async () => {
    const notAFolder = join(dataFolder(), 'data');
    writeFileSync(notAFolder, '');
    const badIssuerKey = dataFolder();
    // Cut short: V8's message for that would quote the text around it, private key and all.
    writeFileSync(join(badIssuerKey, 'dev-issuer-key.json'), '{"d": "PRIVATE-d",\n"p": PRIVATE-p\n}');
    const badTtlFile = dataFolderWithKey();
    mkdirSync(join(badTtlFile, 'dynamodb'));
    writeFileSync(join(badTtlFile, 'dynamodb', 'bulwark-ttl.json'), '{"tables": {"bulwark-app"');
    const storeIsAFile = dataFolder();
    writeFileSync(join(storeIsAFile, 'dynamodb'), '');
    const keyIsAFolder = dataFolder();
    mkdirSync(join(keyIsAFolder, 'encryption-key'));
    const outboxIsAFile = dataFolderWithKey();
    writeFileSync(join(outboxIsAFile, 'outbox'), '');
    const lockedStore = dataFolderWithKey();
    const holder = new Level(join(lockedStore, 'dynamodb'));
    await holder.open();
    onTestFinished(() => holder.close());
    // A table file whose end is overwritten: LevelDB opens the store and finds the damage at the first read.
    const damagedStore = dataFolderWithKey();
    const damaged = new Level(join(damagedStore, 'dynamodb'));
    await damaged.open();
    await damaged.put('key', 'value');
    await damaged.compactRange('a', 'z');
    await damaged.close();
    for (const tableFile of readdirSync(join(damagedStore, 'dynamodb')).filter((name) =>
      name.endsWith('.ldb'),
    )) {
      const path = join(damagedStore, 'dynamodb', tableFile);
      const content = readFileSync(path);
      content.fill(0, content.length - 8);
      writeFileSync(path, content);
    }
    const cases = [
      [
        notAFolder,
        `npm start: the data folder ${notAFolder} is a file, or inside one; point BULWARK_DATA_DIR at a folder`,
      ],
      [
        damagedStore,
        `npm start: embedded DynamoDB: ${join(damagedStore, 'dynamodb')} is damaged (Corruption: not an sstable (bad magic number)); move it aside to start with empty tables, or put back a copy`,
        'npm start: embedded DynamoDB exited (code 1); stopping',
      ],
      [
        badIssuerKey,
        `npm start: ${join(badIssuerKey, 'dev-issuer-key.json')} is not JSON; delete it to make a new key (tokens signed with the old one stop verifying)`,
      ],
      [
        badTtlFile,
        `npm start: embedded DynamoDB could not start: ${join(badTtlFile, 'dynamodb', 'bulwark-ttl.json')} is not JSON (at position 25); delete it`,
      ],
      [storeIsAFile, `npm start: ${join(storeIsAFile, 'dynamodb')} is a file, not a folder; move it aside`],
      [outboxIsAFile, `npm start: ${join(outboxIsAFile, 'outbox')} is a file, not a folder; move it aside`],
      [
        keyIsAFolder,
        `npm start: ${join(keyIsAFolder, 'encryption-key')} is a folder, not a key file; move it aside`,
      ],
      [
        lockedStore,
        new RegExp(
          `^npm start: embedded DynamoDB could not start: ${join(lockedStore, 'dynamodb')} is in use by another process \\(IO error: lock ${join(lockedStore, 'dynamodb', 'LOCK')}: .+\\); stop that process first$`,
        ),
      ],
    ] as const;
    const started = cases.map(([dataDir, ...lines]) => ({
      dataDir,
      lines,
      started: startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir }),
    }));
    for (const { dataDir, lines, started: run } of started) {
      expect(await run.exited).toBe(1);
      const errorLines = run
        .output()
        .split('\n')
        .filter((outputLine) => outputLine.startsWith('npm start:'));
      expect(errorLines).toEqual(
        lines.map((line) => (typeof line === 'string' ? line : expect.stringMatching(line))),
      );
      expect(run.output()).not.toContain('    at ');
      expect(run.output()).not.toContain('PRIVATE');
      expect(existsSync(join(dataDir, 'runtime.pid'))).toBe(false);
    }
  });

  it('stops, saying why, when its embedded DynamoDB dies after start-up, even while it drains', async () => {
    const [dataDir, drainingDataDir] = [dataFolder(), dataFolder()];
    const started = startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir });
    const draining = startLocal({ PORT: '0', BULWARK_DATA_DIR: drainingDataDir });
    await Promise.all([untilStarted(started), untilStarted(draining, 'the runtime to drain')]);
    process.kill(await dynamoDbProcessOf(started), 'SIGKILL');

    // A request in flight holds the drain up while its DynamoDB dies.
    const [, port] = /API\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(draining.output()) ?? [];
    const request = await requestInFlight(Number(port));
    draining.child.kill('SIGTERM');
    await until(() => draining.output().includes('SIGTERM: stopping'), 'the drain');
    process.kill(await dynamoDbProcessOf(draining), 'SIGKILL');
    await until(() => draining.output().includes('embedded DynamoDB exited'), 'the exit to be told');
    await request.finish();

    for (const [run, runDataDir] of [
      [started, dataDir],
      [draining, drainingDataDir],
    ] as const) {
      expect(await run.exited).toBe(1);
      expect(run.output().split('\n')).toContain(
        'npm start: embedded DynamoDB exited (signal SIGKILL); stopping',
      );
      expect(existsSync(join(runDataDir, 'runtime.pid'))).toBe(false);
    }
  });

  it('on Ctrl-C to npm start takes no new request but answers those in flight; a second Ctrl-C stops at once', async () => {
    const dataDir = dataFolder();
    const started = startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir }, { viaNpm: true });
    await untilStarted(started);
    const [, url, port] = /API\s+(http:\/\/127\.0\.0\.1:(\d+))/.exec(started.output()) ?? [];
    const runtimePid = Number(readFileSync(join(dataDir, 'runtime.pid'), 'utf8'));
    const { stdout } = await promisify(execFile)('pgrep', [
      '-P',
      String(runtimePid),
      '-f',
      'dynamodb-server',
    ]);
    const dynamoDbPid = Number(stdout.trim());
    const group = -(started.child.pid as number);
    // Two requests whose bodies are still arriving when Ctrl-C comes.
    const [first, second] = await Promise.all([0, 1].map(() => requestInFlight(Number(port))));
    // As a terminal sends Ctrl-C: to the whole group, so the runtime gets it from there and again from npm.
    process.kill(group, 'SIGINT');
    await until(() => started.output().includes('SIGINT: stopping'), 'the stop');
    // The runtime opens the copies' window as it handles the signal, before it prints that line.
    const firstSignalHandledBy = Date.now();
    expect(started.output().split('\n')).toContain(
      'SIGINT: stopping; waiting for 2 requests and 0 worker batches in flight (Ctrl-C again to stop at once)',
    );
    await expect(fetch(`${url}/health`)).rejects.toThrow();
    // Answered, then closed by the server: a connection left open would hold the stop up.
    expect(await first?.finish()).toMatch(/^HTTP\/1\.1 200 OK\r\nconnection: close\r\n/);
    expect(started.output()).not.toContain('SIGINT again');

    // A second Ctrl-C, past the copies' window, while the runtime is too busy to answer a signal for 200 ms
    // (held with SIGSTOP): a relay that kills what does not acknowledge a signal at once would kill it here.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, firstSignalHandledBy + 1100 - Date.now())),
    );
    process.kill(runtimePid, 'SIGSTOP');
    process.kill(group, 'SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(runtimePid, 'SIGCONT');
    expect(await started.exited).toBe(130);
    expect(started.output().split('\n')).toContain('SIGINT again: stopping at once');
    expect(await second?.closed).toBe('');
    // Gone with it: a restart finds the data folder's store free.
    await until(() => !isAlive(dynamoDbPid), 'the embedded DynamoDB to be gone', 1000);
    expect(existsSync(join(dataDir, 'runtime.pid'))).toBe(false);
  });

  it('stops, saying so, when npm is killed; started directly, it outlives the shell that started it', async () => {
    const npmDataDir = dataFolder();
    const underNpm = startLocal({ PORT: '0', BULWARK_DATA_DIR: npmDataDir }, { viaNpm: true });
    // `nohup … &` from a shell that exits once the runtime is up: the runtime is adopted, as under an npm
    // killed outright.
    const directDataDir = dataFolder();
    const directLog = join(directDataDir, 'output.log');
    const shell = spawn(
      'sh',
      [
        '-c',
        `nohup ${process.execPath} --import tsx bin/local.ts > ${directLog} 2>&1 &
        until grep -q 'Ctrl-C stops everything' ${directLog}; do sleep 0.2; done`,
      ],
      {
        cwd: repositoryRoot,
        env: { ...process.env, PORT: '0', BULWARK_DATA_DIR: directDataDir },
        stdio: 'ignore',
        // A process group of its own, so that the test's end can stop whatever is left of it.
        detached: true,
      },
    );
    onTestFinished(() => {
      try {
        process.kill(-(shell.pid as number), 'SIGKILL');
      } catch {
        // Gone already.
      }
    });
    const directOutput = () => readFileSync(directLog, 'utf8');
    const shellExited = new Promise((resolve) => shell.once('exit', resolve));

    await untilStarted(underNpm, 'the runtime under npm');
    await shellExited;
    // A request in flight holds the stop up, so that a Ctrl-C comes while it drains.
    const [, npmPort] = /API\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(underNpm.output()) ?? [];
    await requestInFlight(Number(npmPort));
    const runtimePid = Number(readFileSync(join(npmDataDir, 'runtime.pid'), 'utf8'));
    process.kill(underNpm.child.pid as number, 'SIGKILL');
    await until(() => underNpm.output().includes('is gone; stopping'), 'the stop');
    expect(underNpm.output().split('\n')).toContain(
      `npm start: the process that started it (pid ${underNpm.child.pid}) is gone; stopping`,
    );
    // The first Ctrl-C the user sends, though the runtime was stopping already.
    process.kill(runtimePid, 'SIGINT');
    // The line first: the pid file can be gone before this process has read the line from the pipe.
    await until(() => underNpm.output().includes('SIGINT: stopping'), 'the answer to the Ctrl-C');
    expect(underNpm.output().split('\n')).toContain('SIGINT: stopping at once');
    await until(() => !existsSync(join(npmDataDir, 'runtime.pid')), 'the runtime under npm to be gone');

    // The shell exited before npm was killed: a watched runtime would have stopped by now, as that one has.
    const [, url] = /API\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(directOutput()) ?? [];
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(directOutput()).not.toContain('is gone');
    process.kill(Number(readFileSync(join(directDataDir, 'runtime.pid'), 'utf8')), 'SIGTERM');
    await until(() => !existsSync(join(directDataDir, 'runtime.pid')), 'the direct runtime to stop');
    expect(directOutput()).toContain('SIGTERM: stopping');
  });

  it('stops at once on a signal during start-up, leaving no runtime.pid behind', async () => {
    const dataDir = dataFolder();
    const started = startLocal({ PORT: '0', BULWARK_DATA_DIR: dataDir });
    await until(() => existsSync(join(dataDir, 'runtime.pid')), 'the start-up');
    started.child.kill('SIGTERM');
    expect(await started.exited).toBe(143);
    expect(started.output()).not.toContain('Ctrl-C stops everything');
    expect(started.output().split('\n')).toContain('SIGTERM: stopping at once');
    expect(existsSync(join(dataDir, 'runtime.pid'))).toBe(false);
  });

  it('says which port is busy instead of printing a stack trace', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    const dataDir = dataFolder();
    try {
      const started = startLocal({ PORT: String(port), BULWARK_DATA_DIR: dataDir });
      expect(await started.exited).toBe(1);
      expect(started.output()).toContain(`npm start: port ${port} is in use`);
      expect(started.output()).not.toContain('    at ');
      expect(existsSync(join(dataDir, 'runtime.pid'))).toBe(false);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});

describe('runtimeEnvironmentPrefix', () => {
  it('names only what differs from the defaults, in words a shell reads back unchanged', async () => {
    expect(runtimeEnvironmentPrefix({ port: defaultPort, dataDir: defaultDataDir })).toBe('');
    expect(runtimeEnvironmentPrefix({ port: 3001, dataDir: `${defaultDataDir}/` })).toBe('PORT=3001 ');
    const dataDir = "/tmp/Bob's data $HOME `id` *";
    const prefix = runtimeEnvironmentPrefix({ port: defaultPort, dataDir });
    const { stdout } = await promisify(execFile)('sh', ['-c', `${prefix}printenv BULWARK_DATA_DIR`]);
    expect(stdout).toBe(`${dataDir}\n`);
  });
});

describe('embedded DynamoDB process', () => {
  it('outlives a Ctrl-C sent to the whole process group, so batches in flight can still write', async () => {
    const child = fork(join(repositoryRoot, 'bin/runtime/dynamodb-server.ts'), ['{}'], {
      cwd: repositoryRoot,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const { endpoint } = await new Promise<{ endpoint: string }>((resolve) =>
        child.once('message', (message) => resolve(message as { endpoint: string })),
      );
      child.kill('SIGINT');
      const client = createDynamoDbClient({ endpoint });
      await expect(client.send(new ListTablesCommand({}))).resolves.toMatchObject({ TableNames: [] });
      client.destroy();
      child.kill('SIGTERM');
      await exited;
      expect(child.exitCode).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
