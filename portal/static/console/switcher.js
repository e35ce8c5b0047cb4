// The tenant switcher's search: Flask-Admin's select2 (3.5) over /admin/switch/search/, which answers as
// Flask-Admin's ajax model loaders do ([[id, text], ...]). Picking a tenant sends the switcher's form,
// the same plain GET that works without JavaScript.
(function ($) {
  'use strict';
  var $field = $('#tenant-search');
  if (!$field.length || !$.fn.select2) {
    return;
  }
  var pageSize = 10;
  $field.attr('type', 'hidden').val('');
  $('#tenant-switch-go').addClass('d-none');
  $field.select2({
    placeholder: 'Switch tenant...',
    minimumInputLength: 0,
    width: '16em',
    ajax: {
      url: $field.attr('data-search-url'),
      dataType: 'json',
      quietMillis: 200,
      data: function (term, page) {
        return {query: term, offset: (page - 1) * pageSize, limit: pageSize};
      },
      results: function (data) {
        // select2 escapes the text (escapeMarkup): tenant names are shown, never interpreted.
        return {results: $.map(data, function (pair) { return {id: pair[0], text: pair[1]}; }),
                more: data.length === pageSize};
      }
    }
  });
  $field.on('change', function (event) {
    if (event.val) {
      var form = $field.closest('form');
      window.location.assign(form.attr('action') + '?' + form.serialize());
    }
  });
})(jQuery);
