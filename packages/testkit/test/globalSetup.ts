export { default } from "../src/vitestGlobalSetup.js"
