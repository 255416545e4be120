/** Option names: camelCase and snake_case keys (options objects, pipeline `with:`) ↔ --kebab-case flags. */
export const kebab = (k: string): string => k.replace(/_/g, '-').replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
