import { Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Acknowledges one cdk-nag AWS Solutions finding on `scope` and everything below it, with the
 * reason it does not apply. `rule` is the id cdk-nag prints after `AwsSolutions::`, e.g.
 * `AwsSolutions-APIG2` or `AwsSolutions-IAM5[Resource::<Fn.Arn>:*]`.
 */
export function acknowledgeNagRule(scope: IConstruct, rule: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions::${rule}`, reason });
}
