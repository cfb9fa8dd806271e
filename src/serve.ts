import { ConfigError, loadConfig } from './config/config.js';
import { createLogger } from './infra/logger.js';
import { startServer } from './server.js';
import { StartupError } from './infra/startup-error.js';
import { tracingEnabled } from './config/tracing-config.js';

/** The server process (after main.ts checked the Node version): load config → start → stop cleanly on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const running = await startServer(config, logger);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: draining in-flight requests');
    try {
      await running.close();
      if (tracingEnabled()) await (await import('./infra/tracing.js')).shutdownTracing().catch(() => undefined);
      logger.info('stopped');
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'error during shutdown');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  // A StartupError already says what to do, in one sentence; anything else gets its message, not a stack trace.
  console.error(err instanceof StartupError ? err.message : `Medivoy failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
