"""hotconf-operator: watches ConfigMaps and rolls each revision out to subscribed pods."""
