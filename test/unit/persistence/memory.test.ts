import { MemoryStore } from '../../../src/persistence/memory.js';
import { storeContract } from './contract.js';

storeContract('memory', { open: async () => new MemoryStore() });
