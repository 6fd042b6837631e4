// The alarm on booking events the sweep leaves pending run after run: its runs do not fail then, so the
// sweeper's failure alarm stays quiet.
import { readFileSync } from 'node:fs';
import { Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { BulwarkAlarms, stillPendingPeriods } from '../../lib/alarms.js';
import { BulwarkStack } from '../../lib/bulwark-stack.js';
import { metricCatalog } from '../../middleware/metrics/catalog.js';
import { projectApp } from '../helpers/cdk-app.js';

let stack: BulwarkStack;
let template: Template;

beforeAll(() => {
  const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
  stack = new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev' });
  template = Template.fromStack(stack);
}, 60_000);

/** A resource's logical id from the `Fn::GetAtt` or `Ref` a token of it resolves to. */
function logicalIdOf(token: string): string {
  const resolved = stack.resolve(token) as { 'Fn::GetAtt'?: [string, string]; Ref?: string };
  const id = resolved['Fn::GetAtt']?.[0] ?? resolved.Ref;
  if (id === undefined) throw new Error(`Not a reference: ${JSON.stringify(resolved)}`);
  return id;
}

describe('BookingEventsStillPending alarm', () => {
  it("fires when every sweep run of three 5-minute periods in a row left an event pending, on the sweeper's own series", () => {
    const alarm =
      template.findResources('AWS::CloudWatch::Alarm')[
        logicalIdOf(stack.alarms.bookingEventsStillPending.alarmArn)
      ];
    expect(stillPendingPeriods).toBe(3);
    expect(alarm?.Properties).toMatchObject({
      Metrics: [
        expect.objectContaining({
          MetricStat: {
            Metric: {
              Namespace: 'Bulwark/Bulwark-dev',
              MetricName: metricCatalog.BookingEventsStillPending.name,
              Dimensions: [{ Name: 'service', Value: 'booking-event-sweeper' }],
            },
            Period: 300,
            // Each run counts what it left, 0 included: the fewest in a period is 0 once a run leaves nothing.
            Stat: 'Minimum',
          },
          ReturnData: true,
        }),
      ],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      TreatMissingData: 'notBreaching',
    });
    const topic = stack.resolve(stack.alarms.topic.topicArn);
    expect(alarm?.Properties).toMatchObject({ AlarmActions: [topic], OKActions: [topic] });
  });

  it("names the sweeper's service as the stack names its function", () => {
    const sweeper =
      template.findResources('AWS::Lambda::Function')[
        logicalIdOf(stack.bookingEventSweeper.function.lambdaFunction.functionArn)
      ];
    expect(sweeper?.Properties?.Environment?.Variables?.POWERTOOLS_SERVICE_NAME).toBe(
      'booking-event-sweeper',
    );
  });

  it('shows on the dashboard beside the sweep’s counts and its failure alarm', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties?.DashboardBody);
    const arn = JSON.stringify(stack.resolve(stack.alarms.bookingEventsStillPending.alarmArn));
    expect(body).toContain('Booking events still pending at every run');
    // In the alarm status widget and in its own graph.
    expect(body.split(arn).length - 1).toBe(2);
  });

  it("judges periods no shorter than the sweep's interval, so a short alarm period cannot leave it silent", () => {
    const periodOf = (props: ConstructorParameters<typeof BulwarkAlarms>[2]) => {
      const alone = new Stack(projectApp(), 'Alarms', { stackName: 'Alarms' });
      const alarms = new BulwarkAlarms(alone, 'Alarms', props);
      const alarm =
        Template.fromStack(alone).findResources('AWS::CloudWatch::Alarm')[
          alone.resolve(alarms.bookingEventsStillPending.alarmArn)['Fn::GetAtt'][0]
        ];
      return alarm?.Properties?.Metrics?.[0]?.MetricStat?.Period;
    };
    expect(periodOf({ period: Duration.minutes(1) })).toBe(300);
    expect(periodOf({ period: Duration.minutes(1), bookingEventSweepInterval: Duration.minutes(10) })).toBe(
      600,
    );
    expect(periodOf({ period: Duration.minutes(15) })).toBe(900);
  });

  it("is in README's table of what each alarm means", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toMatch(
      /^\| BookingEventsStillPending \| every run of the booking event sweep in 3 five-minute periods in a row /m,
    );
  });
});
