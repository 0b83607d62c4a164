"""Configuration people edit: the loader with file:line errors (:mod:`.yamlfile`, :mod:`.loader`),
the admin's config models (:mod:`.settings`), marketing ops' mappings (:mod:`.mappings`),
channel rules (:mod:`.channels`) and campaign joins (:mod:`.campaigns`)."""
