// The HTTP API: one Lambda integration per function, one route per entry of the route table, and the catch-all behind `$default`.
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import {
  catchAllFunction,
  type HttpFunctionName,
  type RouteDefinition,
  routes as routeTable,
  withHeadRoutes,
} from '../functions/routes.js';

export interface BulwarkHttpApiProps {
  /** The function serving each name that a route may point at. */
  readonly functions: Readonly<Record<HttpFunctionName, lambda.IFunction>>;
  /**
   * The routes to create, method and path exactly as given, and a HEAD route beside each GET route
   * (to the same function, which answers it as the GET without the body).
   * @default the route table of `functions/routes.ts`
   */
  readonly routes?: readonly RouteDefinition[];
  /**
   * Name of the API in API Gateway; give each API in an account its own, since the default is the same
   * for every instance.
   * @default 'Api'
   */
  readonly apiName?: string;
  /**
   * Steady-state requests per second allowed across the stage.
   * @default 100
   */
  readonly throttlingRateLimit?: number;
  /**
   * Requests allowed in a burst across the stage.
   * @default 200
   */
  readonly throttlingBurstLimit?: number;
  /**
   * How long the access log group keeps events.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly accessLogRetention?: logs.RetentionDays;
  /**
   * What happens to the access log group when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly accessLogRemovalPolicy?: RemovalPolicy;
}

/**
 * Where access log group names start: API Gateway's log delivery does not add groups under
 * `/aws/vendedlogs/` to the account's CloudWatch Logs resource policy, which it grows by one ARN for every
 * other group it delivers to (and never shrinks) until the policy's 5,120-character cap fails stage creates.
 */
export const accessLogGroupPrefix = '/aws/vendedlogs/';

/** One JSON line per request, only with `$context` variables that HTTP APIs support. */
const accessLogFormat = apigateway.AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    ip: '$context.identity.sourceIp',
    userAgent: '$context.identity.userAgent',
    requestTime: '$context.requestTime',
    routeKey: '$context.routeKey',
    status: '$context.status',
    protocol: '$context.protocol',
    responseLength: '$context.responseLength',
    responseLatency: '$context.responseLatency',
    integrationLatency: '$context.integrationLatency',
    integrationError: '$context.integrationErrorMessage',
  }),
);

/**
 * A Lambda integration that lets API Gateway invoke its function once per path of the routes bound to it.
 * CDK's own adds a permission per route, scoped to the route's path for every stage and method, so `GET`,
 * `HEAD` and `POST` of one path each add the same grant again to the function's resource policy.
 */
class PathScopedLambdaIntegration extends HttpLambdaIntegration {
  readonly #permittedPaths = new Set<string>();

  protected override completeBind(options: apigwv2.HttpRouteIntegrationBindOptions): void {
    const path = options.route.path ?? '';
    if (this.#permittedPaths.has(path)) return;
    this.#permittedPaths.add(path);
    super.completeBind(options);
  }
}

/**
 * An API Gateway HTTP API whose routes come from the route table (each GET route with its HEAD route,
 * since API Gateway sends a HEAD only to a HEAD route), with a throttled,
 * access-logged `$default` stage. Its `$default` route sends every request no route matches to the
 * catch-all function, so those get a problem (404, or 405 with `Allow`) instead of API Gateway's
 * plain `{"message":"Not Found"}`.
 *
 * @example
 * // One function for each name of functions/routes.ts's `httpFunctions`, the catch-all included.
 * const api = new BulwarkHttpApi(this, 'HttpApi', {
 *   functions: {
 *     health: health.lambdaFunction,
 *     users: users.lambdaFunction,
 *     bookings: bookings.lambdaFunction,
 *     webhooks: webhooks.lambdaFunction,
 *     'catch-all': catchAll.lambdaFunction,
 *   },
 * });
 * new CfnOutput(this, 'ApiUrl', { value: api.url });
 */
export class BulwarkHttpApi extends Construct {
  /** The created HTTP API. */
  public readonly api: apigwv2.HttpApi;
  /** The `$default` stage (auto-deployed, throttled, access-logged). */
  public readonly stage: apigwv2.HttpStage;
  /** Where the stage's access logs go. */
  public readonly accessLogGroup: logs.LogGroup;
  /** The stage's invoke URL, ending in `/`. */
  public readonly url: string;
  /** The stage's default route throttling. */
  public readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };

  constructor(scope: Construct, id: string, props: BulwarkHttpApiProps) {
    super(scope, id);
    // One integration per function, shared by its routes, with one invoke permission per path of them.
    const integrations = new Map<HttpFunctionName, PathScopedLambdaIntegration>();
    const integrationOf = (name: HttpFunctionName, usedBy: string): PathScopedLambdaIntegration => {
      let integration = integrations.get(name);
      if (integration === undefined) {
        const fn: lambda.IFunction | undefined = props.functions[name];
        if (fn === undefined) {
          throw new Error(
            `Invalid BulwarkHttpApi props: functions has no ${name}, which ${usedBy} is sent to`,
          );
        }
        integration = new PathScopedLambdaIntegration(`${name}-integration`, fn);
        integrations.set(name, integration);
      }
      return integration;
    };
    this.api = new apigwv2.HttpApi(this, 'Api', {
      apiName: props.apiName,
      // The default stage HttpApi would create takes no throttling or access-log settings.
      createDefaultStage: false,
      defaultIntegration: integrationOf(catchAllFunction, 'the $default route (every unmatched request)'),
    });
    this.accessLogGroup = new logs.LogGroup(this, 'AccessLogs', {
      // Unique per creation: the API's id is new with each API, so a stack deleted and created again
      // never finds its retained predecessor's group under the same name. The group depends on the API,
      // the stage on both: no cycle.
      logGroupName: `${accessLogGroupPrefix}apigateway/${Stack.of(this).stackName}/${this.api.apiId}/access-logs`,
      retention: props.accessLogRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.accessLogRemovalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.throttle = {
      rateLimit: props.throttlingRateLimit ?? 100,
      burstLimit: props.throttlingBurstLimit ?? 200,
    };
    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      autoDeploy: true,
      throttle: this.throttle,
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(this.accessLogGroup),
        format: accessLogFormat,
      },
    });
    this.url = this.stage.url;

    for (const route of withHeadRoutes(props.routes ?? routeTable)) {
      this.api.addRoutes({
        path: route.path,
        methods: [apigwv2.HttpMethod[route.method]],
        integration: integrationOf(route.function, `${route.method} ${route.path}`),
      });
    }
  }
}
