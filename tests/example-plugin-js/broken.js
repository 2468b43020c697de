// The example plugin with a bug, for the test that an author sees their own
// exception: `provision` assumes a setting is always given, so an uncaught
// TypeError escapes it.

import { provisioningTarget as working } from './app.js';

export { pluginInfo, oauth2Server } from './app.js';

export const provisioningTarget = {
  ...working,
  async provision(context, request) {
    const region = context.settings.find(([name]) => name === 'region')[1];
    if (region !== 'emea' && region !== 'apac') throw new Error(`unknown region ${region}`);
    return working.provision(context, request);
  },
};
