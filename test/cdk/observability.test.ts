// Assertion tests for the dashboard and alarms: metric names come from the catalog, every alarm notifies one encrypted topic.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NestedStack, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as integrations from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { httpFunctionNames, httpFunctions } from '../../functions/routes.js';
import { scheduledFunctionNames, scheduledFunctions } from '../../functions/schedules.js';
import { webhookEndpointCircuit, workerNames, workers } from '../../functions/workers.js';
import { BulwarkAlarms, catalogSumQuery } from '../../lib/alarms.js';
import { BulwarkFunction } from '../../lib/bulwark-function.js';
import { BulwarkStack, securityMetricServices } from '../../lib/bulwark-stack.js';
import { auditEventsQuery, BulwarkDashboard, type DashboardMetricServices } from '../../lib/dashboard.js';
import { BulwarkScheduledFunction } from '../../lib/scheduled-function.js';
import { isCatalogMetric, metricCatalog } from '../../middleware/metrics/catalog.js';
import { projectApp } from '../helpers/cdk-app.js';

interface Widget {
  readonly type: string;
  readonly properties: {
    readonly title?: string;
    readonly metrics?: readonly (readonly unknown[])[];
    readonly query?: string;
    readonly alarms?: readonly string[];
    readonly annotations?: { readonly alarms?: readonly string[] };
  };
}

/** The namespace of the `Bulwark-dev` stack's metrics: its own, apart from any other stack's. */
const devNamespace = 'Bulwark/Bulwark-dev';

/** Every function's service name: HTTP functions, workers, scheduled functions and the rotation function. */
const allServices = [...httpFunctionNames, ...workerNames, ...scheduledFunctionNames, 'secret-rotation'];

let stack: BulwarkStack;
let template: Template;
let widgets: Widget[];

/** The dashboard body with every CloudFormation token replaced by `TOKEN`, parsed. */
function dashboardWidgets(of: Template = template): Widget[] {
  const [dashboard] = Object.values(of.findResources('AWS::CloudWatch::Dashboard'));
  const parts: unknown[] = dashboard?.Properties?.DashboardBody?.['Fn::Join']?.[1] ?? [];
  const body = parts.map((part) => (typeof part === 'string' ? part : 'TOKEN')).join('');
  return (JSON.parse(body) as { widgets: Widget[] }).widgets;
}

/** Bulwark metric names a widget graphs: direct `[namespace, name, ...]` lines and SEARCH expressions. */
function bulwarkMetricNames(widget: Widget): string[] {
  return (widget.properties.metrics ?? []).flatMap((line) => {
    if (line[0] === devNamespace) return [String(line[1])];
    const options = line.at(-1) as { expression?: string } | undefined;
    const searched = options?.expression?.match(
      /^SEARCH\('\{"Bulwark\/Bulwark-dev",[\w,]+\} MetricName="(\w+)"'/,
    );
    return searched?.[1] === undefined ? [] : [searched[1]];
  });
}

function widgetTitled(title: string): Widget {
  const widget = widgets.find((candidate) => candidate.properties.title === title);
  if (widget === undefined) throw new Error(`No widget titled ${title}`);
  return widget;
}

beforeAll(() => {
  const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
  stack = new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev' });
  template = Template.fromStack(stack);
  widgets = dashboardWidgets();
}, 60_000);

describe('BulwarkDashboard with services of its own per metric family', () => {
  it('draws each family’s lines for exactly the services given for it', () => {
    const own = new Stack();
    const fn = new lambda.Function(own, 'Fn', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('export const handler = async () => ({})'),
    });
    const metricServices: DashboardMetricServices = {
      authenticating: ['auth-only'],
      rateLimiting: ['limit-only'],
      dataKeys: ['keys-only'],
      circuitBreakers: ['breaker-only'],
    };
    new BulwarkDashboard(own, 'Dashboard', {
      httpApi: new apigwv2.HttpApi(own, 'Api'),
      functions: { 'auth-only': fn },
      metricNamespace: devNamespace,
      metricServices,
      logGroups: [new logs.LogGroup(own, 'Logs')],
    });
    const lines = dashboardWidgets(Template.fromStack(own)).flatMap(
      (widget) => widget.properties.metrics ?? [],
    );
    const servicesOf = (name: string) => [
      ...new Set(lines.filter((line) => line[0] === devNamespace && line[1] === name).map((line) => line[3])),
    ];
    expect(servicesOf(metricCatalog.AccessDenied.name)).toEqual(['auth-only']);
    expect(servicesOf(metricCatalog.AuthSuccess.name)).toEqual(['auth-only']);
    expect(servicesOf(metricCatalog.AuthLatency.name)).toEqual(['auth-only']);
    expect(servicesOf(metricCatalog.RateLimited.name)).toEqual(['limit-only']);
    expect(servicesOf(metricCatalog.RateLimitStoreError.name)).toEqual(['limit-only']);
    expect(servicesOf(metricCatalog.KmsRequest.name)).toEqual(['keys-only']);
    expect(servicesOf(metricCatalog.CircuitStoreError.name)).toEqual(['breaker-only']);
  });
});

describe('BulwarkDashboard', () => {
  it('graphs only metric names that are in the catalog', () => {
    const names = widgets.flatMap(bulwarkMetricNames);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(isCatalogMetric(name), name).toBe(true);
  });

  it.each([
    ['Rate limited (429)', [metricCatalog.RateLimited.name]],
    [
      'Auth failures by reason (left) / successes (right)',
      [metricCatalog.AuthFailure.name, metricCatalog.AuthSuccess.name],
    ],
    ['Auth latency p99 (ms)', [metricCatalog.AuthLatency.name]],
    ['Access denied (403)', [metricCatalog.AccessDenied.name]],
    ['Circuit opened / rejected', [metricCatalog.CircuitOpened.name, metricCatalog.CircuitRejected.name]],
    [
      'KMS requests vs data-key cache hits',
      [metricCatalog.KmsRequest.name, metricCatalog.DataKeyCacheHit.name],
    ],
  ])('has a %s widget graphing %j', (title, names) => {
    expect([...new Set(bulwarkMetricNames(widgetTitled(title)))].sort()).toEqual([...names].sort());
  });

  it.each([
    [
      'Emails sent / failed / skipped / rejected',
      [
        metricCatalog.EmailSent.name,
        metricCatalog.EmailFailed.name,
        metricCatalog.EmailSkipped.name,
        metricCatalog.EmailRejected.name,
      ],
    ],
    [
      'SMS sent / failed / rejected / budget exhausted',
      [
        metricCatalog.SmsSent.name,
        metricCatalog.SmsFailed.name,
        metricCatalog.SmsRejected.name,
        metricCatalog.SmsBudgetExhausted.name,
      ],
    ],
    [
      'Enqueue failures (email / SMS, webhooks)',
      [metricCatalog.EmailEnqueueFailed.name, metricCatalog.WebhookEnqueueFailed.name],
    ],
    [
      'Webhooks delivered / failed',
      [
        metricCatalog.WebhookDelivered.name,
        metricCatalog.WebhookFailed.name,
        metricCatalog.WebhookEndpointDisabled.name,
      ],
    ],
    [
      'Booking events swept / still pending',
      [metricCatalog.BookingEventsSwept.name, metricCatalog.BookingEventsStillPending.name],
    ],
  ])('has a %s widget searching %j over every service', (title, names) => {
    expect([...new Set(bulwarkMetricNames(widgetTitled(title)))].sort()).toEqual([...names].sort());
  });

  it.each([
    ['Queue depth (visible messages)', 'ApproximateNumberOfMessagesVisible', ''],
    ['Age of oldest message (s)', 'ApproximateAgeOfOldestMessage', ''],
    ['DLQ depth', 'ApproximateNumberOfMessagesVisible', ' DLQ'],
  ] as const)('has a %s widget with one %s line per worker (maximum)', (title, metricName, suffix) => {
    const lines = widgetTitled(title).properties.metrics ?? [];
    expect(lines.map((line) => [...line.slice(0, 4), line.at(-1)])).toEqual(
      workerNames.map((name) => [
        'AWS/SQS',
        metricName,
        'QueueName',
        'TOKEN',
        expect.objectContaining({ stat: 'Maximum', label: `${name}${suffix}` }),
      ]),
    );
  });

  it("graphs each worker's Lambda errors in a Worker errors widget", () => {
    const lines = widgetTitled('Worker errors').properties.metrics ?? [];
    expect(lines.map((line) => [line[0], line[1], (line.at(-1) as { label: string }).label])).toEqual(
      workerNames.map((name) => ['AWS/Lambda', 'Errors', name]),
    );
  });

  it('searches metrics with extra dimensions over every value', () => {
    const [authFailures] =
      widgetTitled('Auth failures by reason (left) / successes (right)').properties.metrics ?? [];
    expect(authFailures?.at(-1)).toMatchObject({
      expression: `SEARCH('{"Bulwark/Bulwark-dev",service,reason} MetricName="AuthFailure"', 'Sum', 300)`,
    });
  });

  it('graphs auth successes on the right axis and auth latency at its catalog statistic, p99', () => {
    const lines = widgetTitled('Auth failures by reason (left) / successes (right)').properties.metrics ?? [];
    const successes = lines.filter((line) => line[1] === metricCatalog.AuthSuccess.name);
    expect(successes.length).toBeGreaterThan(0);
    for (const line of successes) expect(line.at(-1)).toMatchObject({ yAxis: 'right', stat: 'Sum' });
    const latencies = widgetTitled('Auth latency p99 (ms)').properties.metrics ?? [];
    expect(latencies.length).toBeGreaterThan(0);
    for (const line of latencies) {
      expect(line.slice(0, 3)).toEqual([devNamespace, metricCatalog.AuthLatency.name, 'service']);
      expect(line.at(-1)).toMatchObject({ stat: metricCatalog.AuthLatency.statistic });
    }
  });

  it('graphs the HTTP API requests, p50/p95/p99 latency and 4xx/5xx', () => {
    const apiLines = ['API requests', 'API latency (ms)', 'API 4xx / 5xx'].flatMap(
      (title) => widgetTitled(title).properties.metrics ?? [],
    );
    expect(apiLines.map((line) => `${line[1]} ${(line.at(-1) as { stat: string }).stat}`)).toEqual([
      'Count Sum',
      'Latency p50',
      'Latency p95',
      'Latency p99',
      '4xx Sum',
      '5xx Sum',
    ]);
  });

  it.each([
    ['Lambda duration p99 (ms)', 'Duration'],
    ['Lambda errors', 'Errors'],
    ['Lambda throttles', 'Throttles'],
    ['Lambda concurrent executions', 'ConcurrentExecutions'],
  ])('has a %s widget with one %s line per function', (title, metricName) => {
    const lines = widgetTitled(title).properties.metrics ?? [];
    expect(lines).toHaveLength(allServices.length);
    for (const line of lines) expect(line.slice(0, 2)).toEqual(['AWS/Lambda', metricName]);
  });

  it("queries the functions' log groups for audit events other than the per-request and per-message successes, keeping server faults", () => {
    // A 5xx writes only its http.request line (outcome error): that one stays.
    const routineFilter =
      'filter ispresent(audit.eventType) and (audit.outcome = "error" or (audit.eventType != "http.request" and audit.eventType != "auth.success" and audit.eventType != "email.sent" and audit.eventType != "sms.sent" and audit.eventType != "webhook.delivered"))';
    const logWidget = widgets.find((widget) => widget.type === 'log');
    expect(logWidget?.properties.query).toContain(routineFilter);
    expect(auditEventsQuery).toContain(routineFilter);
    expect(logWidget?.properties.query?.match(/SOURCE 'TOKEN'/g)).toHaveLength(allServices.length);
  });

  it('shows with each audit event the ids that lead to the rest of its lines: correlation, API Gateway request, invocation', () => {
    const fields =
      'fields @timestamp, service, audit.eventType, audit.outcome, audit.statusCode, audit.userId, audit.clientId, audit.path, audit.ipAddress, correlation_id, audit.requestId, function_request_id';
    expect(auditEventsQuery[0]).toBe(fields);
    expect(widgets.find((widget) => widget.type === 'log')?.properties.query).toContain(fields);
  });

  it("graphs each SES reputation alarm's metric with its threshold, below the emails", () => {
    for (const title of [
      'SES bounce rate (whole account, 0.05 = 5 %)',
      'SES complaint rate (whole account, 0.001 = 0.1 %)',
    ]) {
      expect(widgetTitled(title).properties.annotations?.alarms).toEqual(['TOKEN']);
    }
    const titles = widgets.map((widget) => widget.properties.title);
    expect(titles.indexOf('SES bounce rate (whole account, 0.05 = 5 %)')).toBeGreaterThan(
      titles.indexOf('Emails sent / failed / skipped / rejected'),
    );
  });

  it('shows the twelve alarms, one DLQ alarm per worker, the rotation and the booking event sweep failure alarms, and outputs its console URL', () => {
    expect(widgets.find((widget) => widget.type === 'alarm')?.properties.alarms).toHaveLength(
      12 + workerNames.length + 2,
    );
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    for (const alarm of [stack.secretRotation.failureAlarm, stack.bookingEventSweeper.failureAlarm]) {
      expect(JSON.stringify(dashboard)).toContain(JSON.stringify(stack.resolve(alarm.alarmArn)));
    }
    // Graphed beside what the sweep published and left pending.
    expect(widgetTitled('Booking event sweep failures').properties.annotations?.alarms).toEqual(['TOKEN']);
    expect(JSON.stringify(template.findOutputs('DashboardUrl'))).toContain('#dashboards:name=');
  });
});

/**
 * The module whose events each family of per-service metrics counts: a function can emit them exactly when
 * its bundle holds that module (esbuild leaves out what nothing imports).
 */
const emittingModules = {
  authenticating: 'middleware/auth/authenticator.ts',
  rateLimiting: 'middleware/rate-limit/rate-limiter.ts',
  dataKeys: 'middleware/encryption/kms-key-provider.ts',
  circuitBreakers: 'middleware/circuit-breaker/circuit-breaker.ts',
} as const satisfies Record<keyof DashboardMetricServices, string>;

/** Each per-service security metric the dashboard graphs, by the family of code that emits it. */
const metricFamilies = [
  [metricCatalog.AuthSuccess, 'authenticating'],
  [metricCatalog.AuthLatency, 'authenticating'],
  [metricCatalog.AccessDenied, 'authenticating'],
  [metricCatalog.RateLimited, 'rateLimiting'],
  [metricCatalog.RateLimitStoreError, 'rateLimiting'],
  [metricCatalog.KmsRequest, 'dataKeys'],
  [metricCatalog.DataKeyCacheHit, 'dataKeys'],
  [metricCatalog.CircuitStoreError, 'circuitBreakers'],
] as const;

describe('the services each per-service security metric is graphed for', () => {
  /** Every service's bundled source files, as esbuild resolves its handler's imports. */
  const bundledModules = new Map<string, readonly string[]>();
  const services = (family: keyof typeof emittingModules) =>
    [...bundledModules]
      .filter(([, modules]) => modules.includes(emittingModules[family]))
      .map(([name]) => name);
  /** The services of the dashboard's lines of a metric. */
  const linesOf = (metricName: string) =>
    widgets.flatMap((widget) =>
      (widget.properties.metrics ?? [])
        .filter((line) => line[0] === devNamespace && line[1] === metricName)
        .map((line) => String(line[3])),
    );

  beforeAll(async () => {
    const entries: Record<string, string> = {
      ...Object.fromEntries(httpFunctionNames.map((name) => [name, httpFunctions[name].entry])),
      ...Object.fromEntries(workerNames.map((name) => [name, workers[name].entry])),
      ...Object.fromEntries(scheduledFunctionNames.map((name) => [name, scheduledFunctions[name].entry])),
      'secret-rotation': 'functions/secret-rotation/handler.ts',
    };
    for (const [name, entry] of Object.entries(entries)) {
      const { metafile } = await build({
        absWorkingDir: fileURLToPath(new URL('../..', import.meta.url)),
        entryPoints: [entry],
        bundle: true,
        write: false,
        metafile: true,
        platform: 'node',
        format: 'esm',
        packages: 'external',
        logLevel: 'silent',
      });
      bundledModules.set(name, Object.keys(metafile.inputs));
    }
  }, 60_000);

  it.each(metricFamilies.map(([definition, family]) => [definition.name, family, emittingModules[family]]))(
    'graphs %s for exactly the services whose code can emit it (%s: their bundles hold %s)',
    (metricName, family) => {
      expect(services(family).length).toBeGreaterThan(0);
      expect(linesOf(metricName).sort()).toEqual(services(family).sort());
      expect([...securityMetricServices[family]].sort()).toEqual(services(family).sort());
    },
  );

  it('draws no KMS, data-key or rate-limit line for a function that never emits one', () => {
    for (const name of ['health', 'bookings', 'catch-all', 'email-worker']) {
      expect(linesOf(metricCatalog.KmsRequest.name)).not.toContain(name);
      expect(linesOf(metricCatalog.DataKeyCacheHit.name)).not.toContain(name);
    }
    for (const name of ['health', 'catch-all', ...workerNames]) {
      expect(linesOf(metricCatalog.RateLimited.name)).not.toContain(name);
      expect(linesOf(metricCatalog.AccessDenied.name)).not.toContain(name);
      expect(linesOf(metricCatalog.RateLimitStoreError.name)).not.toContain(name);
    }
    expect(linesOf(metricCatalog.KmsRequest.name).sort()).toEqual(['users', 'webhook-worker', 'webhooks']);
    expect(linesOf(metricCatalog.CircuitStoreError.name).sort()).toEqual([
      'bookings',
      'email-worker',
      'webhook-worker',
    ]);
  });

  it('draws every per-service line of the dashboard from one of these families', () => {
    const perServiceNames = widgets.flatMap((widget) =>
      (widget.properties.metrics ?? []).filter((line) => line[0] === devNamespace).map((line) => line[1]),
    );
    const familyNames = new Set<unknown>(metricFamilies.map(([definition]) => definition.name));
    expect(perServiceNames.filter((name) => !familyNames.has(name))).toEqual([]);
  });
});

/** The SmsVolume alarm's threshold in a stack built with these SMS props. */
function smsVolumeThreshold(sms: ConstructorParameters<typeof BulwarkStack>[2]['sms']): unknown {
  const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
  const built = new BulwarkStack(app, 'Bulwark-sms', { stage: 'dev', sms });
  const id = (built.resolve(built.alarms.smsVolume.alarmArn) as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  return Template.fromStack(built).findResources('AWS::CloudWatch::Alarm')[id]?.Properties?.Threshold;
}

describe('BulwarkAlarms', () => {
  function alarmOf(alarm: { alarmArn: string } | undefined): Record<string, unknown> {
    if (alarm === undefined) throw new Error('Alarm not created');
    const resolved = stack.resolve(alarm.alarmArn) as { 'Fn::GetAtt': [string, string] };
    const resource = template.findResources('AWS::CloudWatch::Alarm')[resolved['Fn::GetAtt'][0]];
    if (resource === undefined) throw new Error('Alarm not found');
    return resource.Properties as Record<string, unknown>;
  }

  it('creates twelve alarms plus one DLQ alarm per worker, the rotation and the booking event sweep failure alarms, each notifying the one topic on alarm and on recovery', () => {
    template.resourceCountIs('AWS::CloudWatch::Alarm', 12 + workerNames.length + 2);
    template.resourceCountIs('AWS::SNS::Topic', 1);
    const topic = stack.resolve(stack.alarms.topic.topicArn);
    const deadLetterAlarms = workerNames.map((name) => stack.workers[name].deadLetterAlarm);
    for (const alarm of [
      ...stack.alarms.alarms,
      ...deadLetterAlarms,
      stack.secretRotation.failureAlarm,
      stack.bookingEventSweeper.failureAlarm,
    ]) {
      expect(alarmOf(alarm)).toMatchObject({ AlarmActions: [topic], OKActions: [topic] });
    }
  });

  it.each([
    [
      "the rotation function's first failed step (its handler throws on every failure)",
      () => ({ fn: stack.secretRotation.rotationFunction, alarm: stack.secretRotation.failureAlarm }),
    ],
    [
      // It throws only when a shard of its index could not be read; Errors also counts timeouts.
      "the booking event sweeper's first failed run",
      () => ({ fn: stack.bookingEventSweeper.function, alarm: stack.bookingEventSweeper.failureAlarm }),
    ],
  ])('alarms on %s in 5 minutes: its Lambda Errors', (_what, of) => {
    const { fn, alarm } = of();
    expect(alarmOf(alarm)).toMatchObject({
      Metrics: [
        expect.objectContaining({
          MetricStat: {
            Metric: {
              Namespace: 'AWS/Lambda',
              MetricName: 'Errors',
              Dimensions: [{ Name: 'FunctionName', Value: stack.resolve(fn.lambdaFunction.functionName) }],
            },
            Period: 300,
            Stat: 'Sum',
          },
          ReturnData: true,
        }),
      ],
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
  });

  it.each([
    [
      'circuitOpened',
      // A customer's webhook receiver failing is not a Bulwark outage; every other circuit still counts.
      `SELECT SUM(${metricCatalog.CircuitOpened.name}) FROM SCHEMA("Bulwark/Bulwark-dev", service, circuit) WHERE circuit != 'webhook-endpoint'`,
      1,
    ],
    [
      'authFailureSpike',
      // A request without a credential rejects none, and a store outage is ServerErrorRate's.
      `SELECT SUM(${metricCatalog.AuthFailure.name}) FROM SCHEMA("Bulwark/Bulwark-dev", service, reason) WHERE reason != 'missing' AND reason != 'store_unavailable'`,
      50,
    ],
    [
      'rateLimitStoreErrors',
      `SELECT SUM(${metricCatalog.RateLimitStoreError.name}) FROM SCHEMA("Bulwark/Bulwark-dev", service)`,
      1,
    ],
    [
      'webhookEnqueueFailed',
      `SELECT SUM(${metricCatalog.WebhookEnqueueFailed.name}) FROM SCHEMA("Bulwark/Bulwark-dev", service)`,
      1,
    ],
    [
      'emailEnqueueFailed',
      `SELECT SUM(${metricCatalog.EmailEnqueueFailed.name}) FROM SCHEMA("Bulwark/Bulwark-dev", service)`,
      1,
    ],
    [
      'smsBudgetExhausted',
      // Either budget, the deployment's or any region's: users are being refused their codes.
      `SELECT SUM(${metricCatalog.SmsBudgetExhausted.name}) FROM SCHEMA("Bulwark/Bulwark-dev", service, budget)`,
      1,
    ],
  ] as const)('alarms %s on the catalog query %s reaching %d', (name, expression, threshold) => {
    expect(alarmOf(stack.alarms[name])).toMatchObject({
      Metrics: [expect.objectContaining({ Expression: expression, Period: 300, ReturnData: true })],
      Threshold: threshold,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
  });

  it('sums every dimension value unless told which to leave out, each left-out value ANDed', () => {
    expect(catalogSumQuery(metricCatalog.CircuitOpened)).not.toContain('WHERE');
    expect(
      catalogSumQuery(metricCatalog.CircuitOpened, { circuit: [webhookEndpointCircuit, 'sms-outbox'] }),
    ).toBe(
      `SELECT SUM(CircuitOpened) FROM SCHEMA("Bulwark", service, circuit) WHERE circuit != 'webhook-endpoint' AND circuit != 'sms-outbox'`,
    );
  });

  it('alarms when more than 5 % of API requests answer 5xx in two of three periods, counting periods with at least three', () => {
    expect(alarmOf(stack.alarms.serverErrorRate)).toMatchObject({
      Metrics: expect.arrayContaining([
        // At least one 5xx also means at least one request: no division by zero.
        expect.objectContaining({ Expression: 'IF(errors >= 3, 100 * errors / requests, 0)' }),
        expect.objectContaining({ Id: 'errors', MetricStat: expect.objectContaining({ Stat: 'Sum' }) }),
      ]),
      Threshold: 5,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
    });
  });

  it('alarms when more than half of the emails of 15 minutes, at least 5 attempted, were refused for their recipient', () => {
    const emailWorkerFunction = stack.resolve(
      stack.workers['email-worker'].worker.lambdaFunction.functionArn,
    ) as {
      'Fn::GetAtt': [string, string];
    };
    const workerEnvironment = template.findResources('AWS::Lambda::Function')[
      emailWorkerFunction['Fn::GetAtt'][0]
    ]?.Properties?.Environment?.Variables as Record<string, unknown>;
    // The series the worker's EMF lines carry: the catalog name, in the stack's namespace, by its service name.
    const emailWorkerSeries = (name: string) => ({
      Metric: {
        Namespace: devNamespace,
        MetricName: name,
        Dimensions: [{ Name: 'service', Value: workerEnvironment.POWERTOOLS_SERVICE_NAME }],
      },
      Period: 900,
      Stat: 'Sum',
    });
    const alarm = alarmOf(stack.alarms.emailRejectionRate);
    expect(alarm).toMatchObject({
      Threshold: 50,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(alarm.Metrics).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Expression: 'IF(attempted >= 5, 100 * FILL(rejected, 0) / attempted, 0)',
          ReturnData: true,
        }),
        expect.objectContaining({
          Id: 'attempted',
          Expression: 'FILL(sent, 0) + FILL(rejected, 0)',
          ReturnData: false,
        }),
        expect.objectContaining({
          Id: 'sent',
          MetricStat: emailWorkerSeries(metricCatalog.EmailSent.name),
          ReturnData: false,
        }),
        expect.objectContaining({
          Id: 'rejected',
          MetricStat: emailWorkerSeries(metricCatalog.EmailRejected.name),
          ReturnData: false,
        }),
      ]),
    );
    expect(alarm.Metrics).toHaveLength(4);
  });

  it("alarms when the email worker sends at least half the deployment's hourly SMS budget in an hour (50 by default)", () => {
    const emailWorkerFunction = stack.resolve(
      stack.workers['email-worker'].worker.lambdaFunction.functionArn,
    ) as { 'Fn::GetAtt': [string, string] };
    const workerEnvironment = template.findResources('AWS::Lambda::Function')[
      emailWorkerFunction['Fn::GetAtt'][0]
    ]?.Properties?.Environment?.Variables as Record<string, unknown>;
    expect(alarmOf(stack.alarms.smsVolume)).toMatchObject({
      Metrics: [
        expect.objectContaining({
          MetricStat: {
            Metric: {
              Namespace: devNamespace,
              MetricName: metricCatalog.SmsSent.name,
              Dimensions: [{ Name: 'service', Value: workerEnvironment.POWERTOOLS_SERVICE_NAME }],
            },
            Period: 3600,
            Stat: 'Sum',
          },
          ReturnData: true,
        }),
      ],
      Threshold: 50,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(smsVolumeThreshold({ perHour: 301 })).toBe(151);
    expect(smsVolumeThreshold({ perHour: 301, alarmThresholdPerHour: 20 })).toBe(20);
    expect(() => smsVolumeThreshold({ alarmThresholdPerHour: 0 })).toThrow(
      'Invalid BulwarkStack props: sms.alarmThresholdPerHour must be a whole number from 1 to 1000000',
    );
    // A budget of 10 an hour admits 19 in one (its burst, then 9 as it refills): 20 SMS never come.
    expect(smsVolumeThreshold({ perHour: 10, perRegionPerHour: 10, alarmThresholdPerHour: 19 })).toBe(19);
    expect(() =>
      smsVolumeThreshold({ perHour: 10, perRegionPerHour: 10, alarmThresholdPerHour: 20 }),
    ).toThrow(
      `Invalid BulwarkStack props: sms.alarmThresholdPerHour (-c smsAlarmThresholdPerHour) must be at most 19: the deployment's SMS budget (sms.perHour 10) admits at most 19 SMS in an hour (a burst of 10, then 9 more as it refills), so ${metricCatalog.SmsSent.name} could never reach 20 and the SmsVolume alarm would never fire`,
    );
    // Three regions of 50 an hour would let 297 out: the deployment's 100 (199 in the hour) holds first.
    expect(smsVolumeThreshold({ regions: ['GB', 'GG', 'JE'], alarmThresholdPerHour: 199 })).toBe(199);
    expect(() => smsVolumeThreshold({ regions: ['GB', 'GG', 'JE'], alarmThresholdPerHour: 200 })).toThrow(
      "sms.alarmThresholdPerHour (-c smsAlarmThresholdPerHour) must be at most 199: the deployment's SMS budget (sms.perHour 100) admits at most 199 SMS in an hour",
    );
  });

  it("refuses an SMS alarm threshold above what the listed regions' budgets let out in an hour", () => {
    // The default region (US) with its default budget of 50 an hour: 99 SMS at most, whatever perHour allows.
    expect(smsVolumeThreshold({ alarmThresholdPerHour: 99 })).toBe(99);
    expect(() => smsVolumeThreshold({ alarmThresholdPerHour: 100 })).toThrow(
      `Invalid BulwarkStack props: sms.alarmThresholdPerHour (-c smsAlarmThresholdPerHour) must be at most 99: SMS go only to the region listed (sms.regions US), each with its own budget (sms.perRegionPerHour 50) that admits at most 99 SMS in an hour (a burst of 50, then 49 more as it refills), so ${metricCatalog.SmsSent.name} could never reach 100 and the SmsVolume alarm would never fire`,
    );
    // Two regions (a repeat counts once) of 20 an hour: 39 each, 78 together, below the deployment's 199.
    expect(
      smsVolumeThreshold({ regions: ['GB', 'GG', 'GB'], perRegionPerHour: 20, alarmThresholdPerHour: 78 }),
    ).toBe(78);
    expect(() =>
      smsVolumeThreshold({ regions: ['GB', 'GG', 'GB'], perRegionPerHour: 20, alarmThresholdPerHour: 79 }),
    ).toThrow(
      'sms.alarmThresholdPerHour (-c smsAlarmThresholdPerHour) must be at most 78: SMS go only to the 2 regions listed (sms.regions GB, GG), each with its own budget (sms.perRegionPerHour 20) that admits at most 39 SMS in an hour (a burst of 20, then 19 more as it refills), 78 in all, so',
    );
    // Left to its default, the threshold is half of perHour, or what the regions let out when fewer.
    expect(smsVolumeThreshold({ perHour: 30, perRegionPerHour: 5 })).toBe(9);
    expect(smsVolumeThreshold({ regions: ['GB', 'GG'], perHour: 30, perRegionPerHour: 5 })).toBe(15);
  });

  it('refuses an SMS alarm threshold the budget can never reach when the CDK app reads both from context', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'bulwark-sms-context-'));
    const app = spawnSync(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: {
        ...process.env,
        // What `cdk synth -c smsPerHour=10 -c smsAlarmThresholdPerHour=20` hands the app.
        CDK_CONTEXT_JSON: JSON.stringify({
          smsPerHour: '10',
          smsAlarmThresholdPerHour: '20',
          'aws:cdk:bundling-stacks': [],
        }),
        CDK_OUTDIR: outdir,
      },
      encoding: 'utf8',
    });
    rmSync(outdir, { recursive: true, force: true });
    expect(app.status).not.toBe(0);
    // The one default region's budget, half of smsPerHour, bounds it: a burst of 5, then 4 as it refills.
    expect(app.stderr).toContain(
      'sms.alarmThresholdPerHour (-c smsAlarmThresholdPerHour) must be at most 9: SMS go only to the region listed (sms.regions US), each with its own budget (sms.perRegionPerHour 5) that admits at most 9 SMS in an hour',
    );
  }, 60_000);
  it.each([
    ['bounce', 'sesBounceRate', 'Reputation.BounceRate', 0.05],
    ['complaint', 'sesComplaintRate', 'Reputation.ComplaintRate', 0.001],
  ] as const)(
    "alarms when the SES account's %s rate reaches the level SES reviews an account at, judged hourly",
    (_rate, name, metricName, threshold) => {
      const alarm = stack.alarms[name];
      if (alarm === undefined) throw new Error(`No ${name} alarm`);
      expect(alarmOf(alarm)).toMatchObject({
        // The account's own rate: no dimension, a fraction from 0 to 1.
        Namespace: 'AWS/SES',
        MetricName: metricName,
        Statistic: 'Maximum',
        Period: 3600,
        Threshold: threshold,
        EvaluationPeriods: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        // A rate SES publishes only now and then: an hour without a point is not a recovery.
        TreatMissingData: 'ignore',
      });
      expect(alarmOf(alarm)).not.toHaveProperty('Dimensions');
    },
  );

  it('encrypts the topic with a rotated customer-managed key that CloudWatch may use', () => {
    const { topicKey } = stack.alarms;
    if (topicKey === undefined) throw new Error('The stack creates its own topic and key');
    const keyArn = stack.resolve(topicKey.key.keyArn);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: keyArn });
    const keyId = (keyArn as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const key = template.findResources('AWS::KMS::Key')[keyId];
    expect(key?.Properties?.EnableKeyRotation).toBe(true);
    expect(key?.Properties?.KeyPolicy?.Statement).toContainEqual(
      expect.objectContaining({
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      }),
    );
  });

  it("refuses publishing without TLS and lets only this account's CloudWatch publish", () => {
    const [policy] = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    expect(policy?.Properties?.PolicyDocument?.Statement).toEqual([
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      expect.objectContaining({
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      }),
    ]);
  });
});

/**
 * Every metric namespace a template names outside AWS's own: the functions' POWERTOOLS_METRICS_NAMESPACE,
 * the alarms' metrics and Metrics Insights queries, and the dashboard's metric lines and SEARCHes.
 */
function namespacesIn(of: Template): { functions: string[]; alarms: string[]; dashboard: string[] } {
  const notAws = (namespace: unknown): namespace is string =>
    typeof namespace === 'string' && !namespace.startsWith('AWS/');
  const queried = (expression: unknown) =>
    [...String(expression ?? '').matchAll(/SCHEMA\("([^"]+)"|SEARCH\('\{"([^"]+)"/g)].map(
      (match) => match[1] ?? match[2],
    );
  const functions = Object.values(of.findResources('AWS::Lambda::Function')).map(
    (fn) => fn.Properties.Environment.Variables.POWERTOOLS_METRICS_NAMESPACE,
  );
  const alarms = Object.values(of.findResources('AWS::CloudWatch::Alarm')).flatMap((alarm) =>
    (
      (alarm.Properties.Metrics ?? []) as {
        Expression?: string;
        MetricStat?: { Metric: { Namespace: string } };
      }[]
    )
      .flatMap((metric) => [metric.MetricStat?.Metric.Namespace, ...queried(metric.Expression)])
      .filter(notAws),
  );
  const dashboard = dashboardWidgets(of).flatMap((widget) =>
    (widget.properties.metrics ?? []).flatMap((line) => [
      line[0],
      ...queried((line.at(-1) as { expression?: string } | undefined)?.expression),
    ]),
  );
  return { functions, alarms, dashboard: dashboard.filter(notAws) };
}

describe('metric namespaces of stacks sharing an account and region', () => {
  it("gives dev and prod each their own, which every function emits to and every alarm and graph reads: dev's data points never page prod", () => {
    const prodApp = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const prod = new BulwarkStack(prodApp, 'Bulwark-prod', {
      stage: 'prod',
      callbackUrls: ['https://app.example.org/callback'],
      email: { identity: 'example.org' },
    });
    for (const [of, namespace] of [
      [template, devNamespace],
      [Template.fromStack(prod), 'Bulwark/Bulwark-prod'],
    ] as const) {
      const found = namespacesIn(of);
      expect(found.functions).toHaveLength(allServices.length);
      // Alarms on catalog metrics: six Metrics Insights queries, the email rejection rate's two series,
      // the SMS volume's one and the pending booking events' one.
      expect(found.alarms).toHaveLength(10);
      expect(found.dashboard.length).toBeGreaterThan(20);
      expect(new Set([...found.functions, ...found.alarms, ...found.dashboard])).toEqual(
        new Set([namespace]),
      );
    }
    expect(stack.metricNamespace).toBe(devNamespace);
    expect(prod.metricNamespace).toBe('Bulwark/Bulwark-prod');
  });
});

/** A function, the alarms and a dashboard in `stack`, each on its default metric namespace. */
function observedOnDefaults(stack: Stack): void {
  const httpApi = new apigwv2.HttpApi(stack, 'Api');
  const fn = new BulwarkFunction(stack, 'Users', { entry: httpFunctions.users.entry, serviceName: 'users' });
  new BulwarkAlarms(stack, 'Alarms', { httpApi });
  new BulwarkDashboard(stack, 'Dashboard', {
    httpApi,
    functions: { users: fn.lambdaFunction },
    logGroups: [fn.logGroup],
  });
}

describe('metric namespaces of constructs on their defaults', () => {
  it("gives each stack's function, alarms and dashboard that stack's own, as the sample stack does", () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stacks = ['Acme-dev', 'Acme-prod'].map((stackName) => {
      const stack = new Stack(app, stackName);
      observedOnDefaults(stack);
      return stack;
    });
    for (const stack of stacks) {
      const { stackName } = stack;
      const found = namespacesIn(Template.fromStack(stack));
      expect(found.functions).toEqual([`Bulwark/${stackName}`]);
      expect(found.alarms.length).toBeGreaterThan(0);
      expect(found.dashboard.length).toBeGreaterThan(0);
      expect(new Set([...found.alarms, ...found.dashboard])).toEqual(new Set([`Bulwark/${stackName}`]));
    }
  });
});

describe('metric namespaces of constructs in a nested stack', () => {
  it("gives them the deployed stack's own, since a nested stack's name is known only at deploy time", () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const parent = new Stack(app, 'Acme-dev');
    const nested = new NestedStack(parent, 'Observability');
    observedOnDefaults(nested);
    const found = namespacesIn(Template.fromStack(nested));
    expect(found.functions).toEqual(['Bulwark/Acme-dev']);
    expect(new Set([...found.alarms, ...found.dashboard])).toEqual(new Set(['Bulwark/Acme-dev']));
  });
});

describe('BulwarkAlarms in a stack split', () => {
  it('publishes to a given topic of a base stack and leaves out the API alarm without an API: functions, API and alarms then split into stacks without a cycle', () => {
    const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
    const base = new Stack(app, 'Base');
    const topic = new sns.Topic(base, 'AlarmTopic');
    const compute = new Stack(app, 'Compute');
    new BulwarkScheduledFunction(compute, 'Sweeper', {
      name: 'booking-event-sweeper',
      definition: scheduledFunctions['booking-event-sweeper'],
      alarmTopic: topic,
    });
    const edge = new Stack(app, 'Edge');
    const users = new BulwarkFunction(compute, 'Users', {
      entry: httpFunctions.users.entry,
      serviceName: 'users',
    });
    const httpApi = new apigwv2.HttpApi(edge, 'Api', {
      defaultIntegration: new integrations.HttpLambdaIntegration('Users', users.lambdaFunction),
    });
    const withApi = new BulwarkAlarms(edge, 'Alarms', { httpApi, topic });
    const monitoring = new Stack(app, 'Monitoring');
    const withoutApi = new BulwarkAlarms(monitoring, 'Alarms', { topic });
    app.synth();

    expect(withApi.topic).toBe(topic);
    expect(withApi.topicKey).toBeUndefined();
    expect(withoutApi.serverErrorRate).toBeUndefined();
    for (const [stack, alarmCount] of [
      [edge, withApi.alarms.length],
      [monitoring, withoutApi.alarms.length],
    ] as const) {
      const template = Template.fromStack(stack);
      template.resourceCountIs('AWS::SNS::Topic', 0);
      template.resourceCountIs('AWS::KMS::Key', 0);
      const actions = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((alarm) =>
        JSON.stringify([alarm.Properties.AlarmActions, alarm.Properties.OKActions]),
      );
      expect(actions).toHaveLength(alarmCount);
      for (const action of actions) expect(action).toContain('"StackName":"Base"');
      for (const action of actions) expect(action).toContain('AlarmTopic');
    }
    expect(withoutApi.alarms.length).toBe(withApi.alarms.length - 1);
  });
});
