package keys_test

import _ "enjin/test/harness" // planted: keys' tests may import nothing beyond keys' own
