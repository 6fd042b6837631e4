// The CDK app: one Bulwark stack for the stage given with `-c stage=dev|prod` (default dev).
import { App } from 'aws-cdk-lib';
import { BulwarkStack, parseStage } from '../lib/bulwark-stack.js';

const app = new App();
const stage = parseStage(app.node.tryGetContext('stage'));
new BulwarkStack(app, `Bulwark-${stage}`, { stage });
