// What no function of the Bulwark stack may do, whatever its role: the calls its code never makes.
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { BulwarkStack, type BulwarkStackProps } from '../../lib/bulwark-stack.js';
import { projectApp } from '../helpers/cdk-app.js';
import { grantsOf } from '../helpers/iam.js';

interface Grant {
  readonly Action: string;
  readonly Resource: unknown;
}

/** Every (action, resource) the stack's IAM policies allow, one per entry. */
function grantsIn(props: Omit<BulwarkStackProps, 'stage'> = {}): Grant[] {
  const app = projectApp({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new BulwarkStack(app, 'Bulwark-dev', { stage: 'dev', ...props });
  const policies = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
  const statements = policies.flatMap((policy) => policy.Properties.PolicyDocument.Statement as unknown[]);
  return grantsOf(statements).map((grant) => JSON.parse(grant) as Grant);
}

let grants: Grant[];
beforeAll(() => {
  grants = grantsIn();
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
