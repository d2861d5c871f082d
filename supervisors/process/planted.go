package process

import _ "enjin/services/dns" // planted: a supervisor importing a service
