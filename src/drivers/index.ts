/**
 * Imports every built-in driver module, so that each registers itself with the driver registry
 * and `driverFactory` finds them all synchronously. Nothing in `src/` needs this any more (the
 * registry imports a driver's module when a backend of it is created); tests and tools that
 * call `driverFactory` directly import it. Add one line per driver.
 *
 * @module
 */
import './file/driver.js';
import './lvm/index.js';
import './ibm-flashsystem/index.js';
import './netapp-eseries/index.js';
