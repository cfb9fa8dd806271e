// Temporary: being replaced by the validation work.
export function loadProfiles(): void {}
