// The CDK app: one Bulwark stack for the stage given with `-c stage=dev|prod` (default dev).
// Each option below may also sit in cdk.json's context, where later deploys keep it (README, CDK and deploy).
import { App } from 'aws-cdk-lib';
import {
  authFromContext,
  BulwarkStack,
  type ContextOption,
  contextBoolean,
  contextList,
  contextNumber,
  contextString,
  defaultEmailIdentity,
  parseStage,
  refuseUnknownContext,
} from '../lib/bulwark-stack.js';

const app = new App();
// Before any option is read: a misspelt key would otherwise leave its option to the default unseen.
refuseUnknownContext(app.node.getAllContext());
const context = (key: ContextOption): unknown => app.node.tryGetContext(key);
/** A context value read and checked under its own key, so an error names the key the operator set. */
const stringContext = (key: ContextOption) => contextString(key, context(key));
const numberContext = (key: ContextOption) => contextNumber(key, context(key));
const stage = parseStage(context('stage'));
// Trust another JWT issuer instead of the stack's own user pool: `-c authIssuer=<url> -c authClientIds=a,b`,
// with `-c authTokenUse=access|id|any` (default access for a Cognito issuer, any otherwise) and
// `-c authAudience=x,y` and `-c authJwksUri=<url>` (both required for an issuer other than Cognito).
const auth = authFromContext(context);
// The verified SES identity the email worker sends from: `-c sesIdentity=example.org [-c emailFrom='App <no-reply@example.org>']`.
// Required in prod (or an smtpHost with an emailFrom): without it, mail would go from the placeholder example.com.
const sesIdentity = stringContext('sesIdentity');
const emailFrom = stringContext('emailFrom');
// In the SES sandbox, the verified recipients: `-c sesSandboxRecipients=a@example.org,example.net`.
const sesSandboxRecipients: unknown = context('sesSandboxRecipients');
if (sesSandboxRecipients !== undefined && sesIdentity === undefined) {
  throw new Error('sesSandboxRecipients needs the sesIdentity the worker sends from');
}
if (emailFrom !== undefined && sesIdentity === undefined && context('smtpHost') === undefined) {
  throw new Error(
    'emailFrom needs the sesIdentity it belongs to (or an smtpHost); it would be ignored otherwise',
  );
}
// Or an SMTP relay, with the pair stored in the SmtpCredentials secret: `-c smtpHost=smtp.example.org [-c smtpPort=465]`.
const smtpHost = stringContext('smtpHost');
const smtpPort = numberContext('smtpPort');
// Where the hosted sign-in returns people: `-c callbackUrls=https://app.example.org/callback,...` (required in prod).
const callbackUrls: unknown = context('callbackUrls');
// The scopes the M2M client may request: `-c m2mScopes=bookings/read,bookings/write` (default: every scope).
const m2mScopes: unknown = context('m2mScopes');
// A user pool created before sign-in ignored the email's case, which Cognito cannot change afterwards:
// `-c signInCaseInsensitive=false` leaves the setting out, so that stack deploys again.
const signInCaseInsensitive = contextBoolean('signInCaseInsensitive', context('signInCaseInsensitive'));
// The hosted domain's prefix is `<name>-<account id>`, the name the stack id's by default: a deploy that
// replaces the user pool needs a new one, `-c cognitoDomainName=bulwark-prod-2`, as the old domain holds its prefix.
const domainName = stringContext('cognitoDomainName');
// The regions whose numbers get SMS codes: `-c smsRegions=GB,GG,JE,IM` (default US), and the SMS budgets:
// `-c smsPerHour=100 -c smsPerRegionPerHour=50` (per hour, for the deployment and for each region), and the
// SmsVolume alarm's threshold: `-c smsAlarmThresholdPerHour=50` (SMS in an hour).
const smsRegions: unknown = context('smsRegions');
const smsPerHour = numberContext('smsPerHour');
const smsPerRegionPerHour = numberContext('smsPerRegionPerHour');
const smsAlarmThresholdPerHour = numberContext('smsAlarmThresholdPerHour');
new BulwarkStack(app, `Bulwark-${stage}`, {
  stage,
  ...(callbackUrls === undefined ? {} : { callbackUrls: contextList('callbackUrls', callbackUrls) }),
  ...(signInCaseInsensitive === undefined ? {} : { signInCaseInsensitive }),
  ...(domainName === undefined ? {} : { cognitoDomainName: domainName }),
  ...(m2mScopes === undefined ? {} : { m2mScopes: contextList('m2mScopes', m2mScopes) }),
  ...(auth === undefined ? {} : { auth }),
  sms: {
    ...(smsRegions === undefined ? {} : { regions: contextList('smsRegions', smsRegions) }),
    ...(smsPerHour === undefined ? {} : { perHour: smsPerHour }),
    ...(smsPerRegionPerHour === undefined ? {} : { perRegionPerHour: smsPerRegionPerHour }),
    ...(smsAlarmThresholdPerHour === undefined ? {} : { alarmThresholdPerHour: smsAlarmThresholdPerHour }),
  },
  ...(sesIdentity !== undefined || smtpHost !== undefined
    ? {
        email: {
          identity: sesIdentity ?? defaultEmailIdentity,
          ...(emailFrom === undefined ? {} : { from: emailFrom }),
          ...(sesSandboxRecipients === undefined
            ? {}
            : { sandboxRecipients: contextList('sesSandboxRecipients', sesSandboxRecipients) }),
          ...(smtpHost !== undefined
            ? { smtp: { host: smtpHost, ...(smtpPort === undefined ? {} : { port: smtpPort }) } }
            : {}),
        },
      }
    : {}),
});
