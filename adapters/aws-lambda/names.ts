import type { App } from '../../core/app.js';
import type { AwsNames } from './types.js';

const envKey = (resource: string) => resource.replace(/[^A-Za-z0-9]/g, '_').toUpperCase();

/**
 * Physical names of an app's resources. The deployment sets them in the Lambda environment
 * (PETREL_TABLE_<RESOURCE>, PETREL_BUCKET_<RESOURCE>, PETREL_DELIVERY_TABLE, PETREL_EVENT_BUS);
 * without them: `<app>-<resource>`, `<app>-delivery` and the account's default bus.
 */
export function awsNames(app: Pick<App, 'name'>, env: Record<string, string | undefined> = process.env): AwsNames {
  return {
    table: (resource) => env[`PETREL_TABLE_${envKey(resource)}`] ?? `${app.name}-${resource}`,
    bucket: (resource) => env[`PETREL_BUCKET_${envKey(resource)}`] ?? `${app.name}-${resource}`,
    deliveryTable: env.PETREL_DELIVERY_TABLE ?? `${app.name}-delivery`,
    eventBus: env.PETREL_EVENT_BUS ?? 'default',
  };
}
