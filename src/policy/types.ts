export class PolicyError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'PolicyError';
    this.reason = reason;
  }
}
