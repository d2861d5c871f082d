package keys

import _ "enjin/services/dns" // planted: a lower layer (keys) importing a higher one
