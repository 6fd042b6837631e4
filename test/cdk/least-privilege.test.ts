// What no function of the Bulwark stack may do, whatever its role: the calls its code never makes.
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { BulwarkStack, type BulwarkStackProps } from '../../lib/bulwark-stack.js';
import { projectApp } from '../helpers/cdk-app.js';
import { grantsOf } from '../helpers/iam.js';

interface Grant {
  /** The role's logical id. */
  readonly Role: string;
  readonly Action: string;
  readonly Resource: unknown;
}

interface Synthesised {
  readonly grants: Grant[];
  /** The logical id of the secret-rotation function's role. */
  readonly rotationRole: string;
}

/** Every (role, action, resource) the stack's IAM policies allow, one per entry. */
function synthesise(props: Omit<BulwarkStackProps, 'stage'> = {}): Synthesised {
  const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev', ...props });
  const policies = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
  const grants = policies.flatMap((policy) => {
    const roles = (policy.Properties.Roles as { Ref: string }[]).map(({ Ref }) => Ref);
    const allowed = grantsOf(policy.Properties.PolicyDocument.Statement as unknown[]).map(
      (grant) => JSON.parse(grant) as Omit<Grant, 'Role'>,
    );
    return roles.flatMap((Role) => allowed.map((grant) => ({ Role, ...grant })));
  });
  const rotationRole = stack.resolve(stack.secretRotation.rotationFunction.role.roleName) as { Ref: string };
  return { grants, rotationRole: rotationRole.Ref };
}

let grants: Grant[];
let rotationRole: string;
beforeAll(() => {
  ({ grants, rotationRole } = synthesise());
});

describe('the tables', () => {
  it('may be read and written only item by item and queried: no scan, batch, DescribeTable or stream read', () => {
    const tableActions = new Set(
      grants.map(({ Action }) => Action).filter((action) => action.startsWith('dynamodb:')),
    );
    expect([...tableActions].sort()).toEqual([
      'dynamodb:ConditionCheckItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
  });
});

describe('the table indexes', () => {
  const onIndex = (resource: unknown) => JSON.stringify(resource).includes('/index/');

  it('may only be queried, each index by name: no item call on an index, no `index/*`', () => {
    const onIndexes = grants
      .filter(({ Action }) => Action.startsWith('dynamodb:'))
      .filter(({ Resource }) => onIndex(Resource));
    expect(onIndexes.length).toBeGreaterThan(0);
    for (const { Action, Resource } of onIndexes) {
      expect(Action).toBe('dynamodb:Query');
      expect(JSON.stringify(Resource)).toMatch(/\/index\/gsi\d+"/);
    }
  });

  it("never allow a Query of the app table's own keys: every app-table query names an index", () => {
    const app = grants.filter(
      ({ Action, Resource }) =>
        Action === 'dynamodb:Query' && !onIndex(Resource) && JSON.stringify(Resource).includes('AppTable'),
    );
    expect(app).toEqual([]);
  });
});

describe('the secrets', () => {
  const describers = (of: readonly Grant[]) =>
    of.filter(({ Action }) => Action === 'secretsmanager:DescribeSecret').map(({ Role }) => Role);

  it('are described only by the rotation function: their readers may only get their values', () => {
    expect(grants.some(({ Action }) => Action === 'secretsmanager:GetSecretValue')).toBe(true);
    expect(new Set(describers(grants))).toEqual(new Set([rotationRole]));
  });

  it("are described by no reader with an SMTP relay either: the email worker gets SmtpCredentials' value only", () => {
    const smtp = synthesise({ email: { identity: 'example.org', smtp: { host: 'smtp.example.org' } } });
    expect(new Set(describers(smtp.grants))).toEqual(new Set([smtp.rotationRole]));
  });
});
