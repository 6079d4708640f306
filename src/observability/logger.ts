import winston from 'winston';

/**
 * JSON lines on stderr, always: in stdio mode stdout is the MCP protocol stream, and one stray
 * byte there corrupts the client's framing.
 */
export function createLogger(level: string = process.env.BULWARK_LOG_LEVEL ?? 'info'): winston.Logger {
  return winston.createLogger({
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
}

export type Logger = winston.Logger;
