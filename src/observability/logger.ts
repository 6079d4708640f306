import winston from 'winston';

/**
 * JSON lines on stderr, always: in stdio mode stdout is the MCP protocol stream, and one stray
 * byte there corrupts the client's framing.
 */
export function createLogger(level: string = process.env.BULWARK_LOG_LEVEL ?? 'info'): winston.Logger {
  const logger = winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json()),
    defaultMeta: { service: 'bulwark' },
    transports: [
      new winston.transports.Console({
        // Every level goes to stderr, not just errors.
        stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
      }),
    ],
  });
  dropBelowLevelEarly(logger);
  return logger;
}

/**
 * winston timestamps and serialises every line, then lets the transports drop the ones below
 * their level; a `debug` line on a per-request path cost that on every request at `info`. Each
 * level method first asks `isLevelEnabled` (the logger's level and its transports', read at
 * call time), so a dropped line costs one comparison. What is written is unchanged.
 */
function dropBelowLevelEarly(logger: winston.Logger): void {
  const methods = logger as unknown as Record<string, (...args: unknown[]) => winston.Logger>;
  for (const level of Object.keys(logger.levels)) {
    const write = methods[level];
    if (typeof write !== 'function') continue;
    methods[level] = function (this: winston.Logger | undefined, ...args: unknown[]): winston.Logger {
      const self = this ?? logger;
      return self.isLevelEnabled(level) ? write.apply(self, args) : self;
    };
  }
}

export type Logger = winston.Logger;
